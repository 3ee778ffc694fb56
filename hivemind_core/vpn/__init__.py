"""WireGuard VPN management: server settings, peers, client and server configs.

The page (``pages/vpn.py``) and the CLI (``hivemind_core.vpn.cli``) both call
:mod:`hivemind_core.vpn.service`; the other modules each do one job
(keys, address allocation, names, rendering, status, QR codes).
"""
