"""edge_se.models"""
