"""edge_se.attention"""
