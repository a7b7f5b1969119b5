"""edge_se.export"""
