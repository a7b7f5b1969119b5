"""edge_se.calibration"""
