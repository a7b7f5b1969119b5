"""edge_se.tensorrt"""
