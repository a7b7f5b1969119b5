"""edge_se.runtime"""
