"""edge_se.report"""
