"""A Python client for Bursar, written from docs/protocol.md: typed commands and result codes,
exact decimal amounts. Requires aioquic."""

from .client import Client
from .wire import (
    Account, AccountFlags, Command, Kind, Ledger, OrderChange, ProtocolError, ResultCode, StandingOrder, Transfer, TransferFlags, Trigger,
)

__all__ = [
    "Account", "AccountFlags", "Client", "Command", "Kind", "Ledger", "OrderChange", "ProtocolError", "ResultCode", "StandingOrder",
    "Transfer", "TransferFlags", "Trigger",
]
