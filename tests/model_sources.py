"""Model source files the tests write out and export (``file.py:build`` specs)."""

NAN_GUARD = """
    import torch, torch.nn as nn

    class Guard(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if torch.isnan(x).any():  # BRANCH (a value branch: TorchScript freezes it, torch.export refuses it)
                x = torch.nan_to_num(x)
            return self.conv(x).mean((2, 3))

    def build():
        return Guard()
    """
