"""A Python client for Bursar, written from docs/protocol.md: typed commands and result codes,
exact decimal amounts. Requires aioquic."""

from .client import Client
from .wire import Account, AccountFlags, Command, Kind, Ledger, ProtocolError, ResultCode, Transfer, TransferFlags

__all__ = ["Account", "AccountFlags", "Client", "Command", "Kind", "Ledger", "ProtocolError", "ResultCode", "Transfer", "TransferFlags"]
