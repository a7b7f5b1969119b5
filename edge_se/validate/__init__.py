"""edge_se.validate"""
