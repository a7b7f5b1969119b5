"""edge_se.validate"""

from edge_se._callable import make_callable

make_callable(__name__)  # edge_se.validate(...) is the API call (edge_se/api.py)
