"""A Python client for Bursar, written from docs/protocol.md: typed commands and result codes,
exact decimal amounts. Requires aioquic."""

from .client import Client
from .wire import (
    Account, AccountFlags, Command, Event, EventType, Exchange, Kind, Ledger, OrderChange, ProtocolError, Quote, ResultCode, StandingOrder, Transfer,
    TransferFlags, Trigger,
)

__all__ = [
    "Account", "AccountFlags", "Client", "Command", "Event", "EventType", "Exchange", "Kind", "Ledger", "OrderChange", "ProtocolError", "Quote",
    "ResultCode", "StandingOrder", "Transfer", "TransferFlags", "Trigger",
]
