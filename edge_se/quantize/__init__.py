"""edge_se.quantize"""
