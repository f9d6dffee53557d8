"""Bursar's wire format (docs/protocol.md), byte by byte: frames, records and codes.

Written from the protocol document, not from the Rust code: every offset below is the document's.
All integers are little-endian; every record is 128 bytes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from decimal import Decimal

MAGIC = b"BRSR"
VERSION = 1
HEADER_SIZE = 32
RECORD_SIZE = 128
RECORDS_MAX = 8189
U128_MAX = (1 << 128) - 1


class FrameType(enum.IntEnum):
    REQUEST = 1
    REPLY = 2
    ERROR = 3


class Operation(enum.IntEnum):
    SUBMIT = 1
    LOOKUP_ACCOUNTS = 2
    LOOKUP_TRANSFERS = 3
    GET_ACCOUNT_TRANSFERS = 4
    GET_ACCOUNT_BALANCES = 5
    LEDGER_TOTALS = 6
    STATUS = 7
    METRICS = 8
    LOOKUP_OUTCOMES = 9
    LOOKUP_LIMITS = 10
    LOOKUP_LINEAGE = 11
    LOOKUP_POLICY = 12
    LOOKUP_ORDERS = 13
    LOOKUP_ACCOUNT_ORDERS = 14
    LOOKUP_QUOTES = 15
    EXPIRING_HOLDS = 16
    SUBSCRIBE = 17


class Kind(enum.IntEnum):
    """Command kinds: the submit table of docs/protocol.md."""

    CREATE_LEDGER = 1
    CREATE_ACCOUNT = 2
    TRANSFER = 3
    DEBIT = 4
    CREDIT = 5
    HOLD = 6
    CAPTURE = 7
    RELEASE = 8
    FREEZE = 9
    THAW = 10
    CLOSE = 11
    SET_LIMITS = 12
    REVERSE = 13
    SET_CHANNELS = 14
    SET_VELOCITY = 15
    CREATE_STANDING_ORDER = 16
    CREATE_TRIGGER = 17
    PAUSE_ORDER = 18
    RESUME_ORDER = 19
    CANCEL_ORDER = 20
    AMEND_ORDER = 21
    CREATE_QUOTE = 22
    EXCHANGE = 23
    PLACE_ORDER = 24


class ProtocolError(enum.IntEnum):
    """Error frame codes (docs/protocol.md, "Error frames")."""

    BAD_MAGIC = 1
    UNSUPPORTED_VERSION = 2
    BAD_FRAME_TYPE = 3
    UNKNOWN_OPERATION = 4
    FRAME_TOO_LARGE = 5
    TOO_MANY_RECORDS = 6
    LENGTH_MISMATCH = 7
    BAD_CHECKSUM = 8
    RESERVED_NOT_ZERO = 9
    UNKNOWN_COMMAND_KIND = 10
    TRUNCATED = 11
    BUSY = 12
    SHUTTING_DOWN = 13
    UNKNOWN_RESULT_CODE = 14
    POSITION_RECYCLED = 15
    POSITION_AHEAD = 16
    SUBSCRIPTIONS_FULL = 17
    FEED_UNAVAILABLE = 18
    FEED_FAILED = 19
    HISTORY_UNREADABLE = 20


class ResultCode(enum.IntEnum):
    """One per command (docs/result-codes.md); `OK` and `EXISTS` are successes."""

    OK = 0
    LINKED_EVENT_FAILED = 1
    LINKED_EVENT_CHAIN_OPEN = 2
    TIMESTAMP_MUST_BE_ZERO = 3
    RESERVED_FIELD = 4
    RESERVED_FLAG = 5
    ID_MUST_NOT_BE_ZERO = 6
    ID_MUST_NOT_BE_INT_MAX = 7
    EXISTS_WITH_DIFFERENT_FLAGS = 8
    EXISTS_WITH_DIFFERENT_PENDING_ID = 9
    EXISTS_WITH_DIFFERENT_TIMEOUT = 10
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = 11
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = 12
    EXISTS_WITH_DIFFERENT_AMOUNT = 13
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = 14
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = 15
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = 16
    EXISTS_WITH_DIFFERENT_LEDGER = 17
    EXISTS_WITH_DIFFERENT_CODE = 18
    EXISTS_WITH_DIFFERENT_CURRENCY = 19
    EXISTS_WITH_DIFFERENT_SCALE = 20
    EXISTS_WITH_DIFFERENT_SETTLEMENT_ACCOUNT = 21
    EXISTS = 22
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 23
    DEBITS_PENDING_MUST_BE_ZERO = 24
    DEBITS_POSTED_MUST_BE_ZERO = 25
    CREDITS_PENDING_MUST_BE_ZERO = 26
    CREDITS_POSTED_MUST_BE_ZERO = 27
    CURRENCY_INVALID = 28
    SCALE_TOO_LARGE = 29
    ACCOUNT_ID_MUST_NOT_BE_ZERO = 30
    ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 31
    CHANGE_MUST_NAME_A_SIDE = 32
    COUNTERPARTY_MUST_BE_ZERO = 33
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = 34
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 35
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = 36
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 37
    ACCOUNTS_MUST_BE_DIFFERENT = 38
    PENDING_ID_MUST_BE_ZERO = 39
    PENDING_ID_MUST_NOT_BE_ZERO = 40
    PENDING_ID_MUST_NOT_BE_INT_MAX = 41
    PENDING_ID_MUST_BE_DIFFERENT = 42
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = 43
    LEDGER_MUST_NOT_BE_ZERO = 44
    CODE_MUST_NOT_BE_ZERO = 45
    LEDGER_NOT_FOUND = 46
    SETTLEMENT_ACCOUNT_EXISTS = 47
    ACCOUNT_IS_SETTLEMENT_ACCOUNT = 48
    DEBIT_ACCOUNT_NOT_FOUND = 49
    CREDIT_ACCOUNT_NOT_FOUND = 50
    ACCOUNT_NOT_FOUND = 51
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = 52
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = 53
    PENDING_TRANSFER_NOT_FOUND = 54
    PENDING_TRANSFER_NOT_PENDING = 55
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = 56
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = 57
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = 58
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = 59
    EXCEEDS_PENDING_TRANSFER_AMOUNT = 60
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = 61
    PENDING_TRANSFER_ALREADY_POSTED = 62
    PENDING_TRANSFER_ALREADY_VOIDED = 63
    PENDING_TRANSFER_EXPIRED = 64
    DEBIT_ACCOUNT_CLOSED = 65
    CREDIT_ACCOUNT_CLOSED = 66
    ACCOUNT_CLOSED = 67
    DEBIT_ACCOUNT_FROZEN = 68
    CREDIT_ACCOUNT_FROZEN = 69
    ACCOUNT_HAS_PENDING_BALANCE = 70
    ACCOUNT_HAS_BALANCE = 71
    OVERFLOWS_DEBITS_PENDING = 72
    OVERFLOWS_CREDITS_PENDING = 73
    OVERFLOWS_DEBITS_POSTED = 74
    OVERFLOWS_CREDITS_POSTED = 75
    OVERFLOWS_DEBITS = 76
    OVERFLOWS_CREDITS = 77
    OVERFLOWS_TIMEOUT = 78
    OVERFLOWS_LEDGER_TOTALS = 79
    EXCEEDS_CREDITS = 80
    EXCEEDS_DEBITS = 81
    LEDGERS_LIMIT_REACHED = 82
    ACCOUNTS_LIMIT_REACHED = 83
    TRANSFERS_LIMIT_REACHED = 84
    ID_ALREADY_FAILED = 85
    REVERSED_TRANSFER_NOT_FOUND = 86
    REVERSED_TRANSFER_IS_A_HOLD = 87
    REVERSED_TRANSFER_NOT_REVERSIBLE = 88
    REVERSAL_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = 89
    REVERSAL_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = 90
    REVERSAL_HAS_DIFFERENT_LEDGER = 91
    EXCEEDS_REVERSIBLE_AMOUNT = 92
    DEBIT_CODE_NOT_ALLOWED = 93
    CREDIT_CODE_NOT_ALLOWED = 94
    EXCEEDS_DEBIT_VELOCITY_COUNT = 95
    EXCEEDS_DEBIT_VELOCITY_AMOUNT = 96
    EXCEEDS_CREDIT_VELOCITY_COUNT = 97
    EXCEEDS_CREDIT_VELOCITY_AMOUNT = 98
    VELOCITY_SLOT_INVALID = 99
    VELOCITY_WINDOW_INVALID = 100
    VELOCITY_RULE_MUST_SET_A_MAXIMUM = 101
    ID_RESERVED = 102
    ORDER_EXISTS_WITH_DIFFERENT_FIELDS = 103
    ORDER_PERIOD_INVALID = 104
    ORDER_DAY_INVALID = 105
    ORDER_FIRST_DUE_IN_PAST = 106
    ORDER_END_INVALID = 107
    ORDER_CATCH_UP_INVALID = 108
    ORDER_RETRY_INVALID = 109
    TRIGGER_KIND_INVALID = 110
    TRIGGER_THRESHOLD_INVALID = 111
    ORDER_AMOUNT_INVALID = 112
    TRIGGER_CAP_INVALID = 113
    ORDER_NOT_FOUND = 114
    ORDER_ENDED = 115
    ORDERS_PER_ACCOUNT_LIMIT_REACHED = 116
    ORDERS_LIMIT_REACHED = 117
    QUOTE_EXISTS_WITH_DIFFERENT_FIELDS = 118
    EXCHANGE_EXISTS_WITH_DIFFERENT_FIELDS = 119
    QUOTE_RATE_INVALID = 120
    QUOTE_VALIDITY_INVALID = 121
    QUOTE_LEDGERS_MUST_BE_DIFFERENT = 122
    EXCHANGE_IDS_MUST_BE_DIFFERENT = 123
    EXCHANGE_AMOUNT_MUST_NOT_BE_ZERO = 124
    QUOTE_NOT_FOUND = 125
    QUOTE_LIQUIDITY_ACCOUNT_INVALID = 126
    QUOTE_CUSTOMER_INVALID = 127
    EXCHANGE_LEDGER_MISMATCH = 128
    QUOTE_ISSUED_TO_ANOTHER_CUSTOMER = 129
    EXCHANGE_ORDER_NOT_FOUND = 130
    EXCHANGE_BOOKED_AT_INVALID = 131
    QUOTE_EXPIRED = 132
    QUOTE_USED_UP = 133
    EXCHANGE_AMOUNT_TOO_SMALL = 134
    EXCHANGE_OVERFLOW = 135
    QUOTE_AMOUNT_EXCEEDED = 136
    EXCHANGE_EXCEEDS_ORDER = 137
    EXCHANGE_EXCEEDS_LIQUIDITY = 138
    QUOTES_LIMIT_REACHED = 139

    @property
    def is_success(self) -> bool:
        return self in (ResultCode.OK, ResultCode.EXISTS)

    def __str__(self) -> str:
        """The code's name as the documents write it (`exceeds_credits`)."""
        return self.name.lower()


class AccountFlags(enum.IntFlag):
    LINKED = 1 << 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
    HISTORY = 1 << 3


class TransferFlags(enum.IntFlag):
    LINKED = 1 << 0
    PENDING = 1 << 1
    POST_PENDING = 1 << 2
    VOID_PENDING = 1 << 3
    REVERSE = 1 << 4


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as the frame header's checksum uses."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _u128(v: int) -> bytes:
    return v.to_bytes(16, "little")


def _get_u128(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 16], "little")


def encode_frame(frame_type: int, operation: int, request_id: int, count: int, body: bytes) -> bytes:
    """Header (32 bytes: magic, version, type, operation, request id, record count, body length,
    CRC32C of header bytes 0..24 then the body, a reserved zero word), then the body."""
    head = MAGIC + struct.pack("<HBBQII", VERSION, frame_type, operation, request_id, count, len(body))
    return head + struct.pack("<II", crc32c(head + body), 0) + body


@dataclass
class Frame:
    frame_type: int
    operation: int
    request_id: int
    count: int
    body: bytes


class FrameError(Exception):
    """A reply that is not a well-formed frame, or an error frame from the server."""

    def __init__(self, message: str, error: ProtocolError | None = None):
        super().__init__(message)
        self.error = error


def decode_frame(data: bytes) -> Frame:
    if len(data) < HEADER_SIZE:
        raise FrameError(f"a reply of {len(data)} bytes is shorter than a frame header")
    if data[:4] != MAGIC:
        raise FrameError("not a Bursar frame (bad magic)")
    version, frame_type, operation, request_id, count, length, crc, reserved = struct.unpack("<HBBQIIII", data[4:32])
    if version != VERSION or reserved != 0:
        raise FrameError(f"protocol version {version}, reserved word {reserved}")
    body = data[HEADER_SIZE:]
    if len(body) != length:
        raise FrameError(f"body of {len(body)} bytes where the header says {length}")
    if crc32c(data[:24] + body) != crc:
        raise FrameError("bad checksum")
    frame = Frame(frame_type, operation, request_id, count, body)
    if frame_type == FrameType.ERROR:
        code = struct.unpack("<I", body[:4])[0] if len(body) >= 4 else 0
        error = ProtocolError(code) if code in ProtocolError._value2member_map_ else None
        raise FrameError(f"the server answered {error.name.lower() if error else code}", error)
    return frame


@dataclass
class Ledger:
    """A ledger: a currency with its scale and settlement account."""

    id: int
    currency: str
    scale: int
    settlement_account_id: int
    settlement_account_code: int = 1
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    flags: int = 0
    timestamp: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        b[0:16] = _u128(self.settlement_account_id)
        b[16:32] = _u128(self.user_data_128)
        struct.pack_into("<QQII", b, 32, self.user_data_64, self.timestamp, self.id, self.user_data_32)
        b[56:59] = self.currency.encode("ascii")
        struct.pack_into("<BHH", b, 59, self.scale, self.settlement_account_code, self.flags)
        return bytes(b)

    @staticmethod
    def decode(b: bytes) -> "Ledger":
        user_data_64, timestamp, id_, user_data_32 = struct.unpack_from("<QQII", b, 32)
        scale, code, flags = struct.unpack_from("<BHH", b, 59)
        return Ledger(id_, b[56:59].decode("ascii"), scale, _get_u128(b, 0), code, _get_u128(b, 16), user_data_64, user_data_32, flags, timestamp)

    def amount(self, minor: int) -> Decimal:
        """Minor units as an exact decimal in this ledger's currency."""
        return Decimal(minor).scaleb(-self.scale)

    def minor(self, amount: Decimal | str) -> int:
        """An exact decimal amount ("12.50") in minor units; more decimals than the scale is an error."""
        value = Decimal(amount)
        if value < 0:
            raise ValueError(f"{amount}: amounts are never negative")
        scaled = value.scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount}: {self.currency} has {self.scale} decimals; refusing to round")
        return int(scaled)


@dataclass
class Account:
    id: int
    ledger: int
    code: int
    flags: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    state: int = 0
    timestamp: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        b[0:16] = _u128(self.id)
        for k, v in enumerate((self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted, self.user_data_128)):
            b[16 + 16 * k : 32 + 16 * k] = _u128(v)
        struct.pack_into("<QIB", b, 96, self.user_data_64, self.user_data_32, self.state)
        struct.pack_into("<IHHQ", b, 112, self.ledger, self.code, self.flags, self.timestamp)
        return bytes(b)

    @staticmethod
    def decode(b: bytes) -> "Account":
        user_data_64, user_data_32, state = struct.unpack_from("<QIB", b, 96)
        ledger, code, flags, timestamp = struct.unpack_from("<IHHQ", b, 112)
        return Account(
            _get_u128(b, 0), ledger, code, flags, _get_u128(b, 80), user_data_64, user_data_32,
            _get_u128(b, 16), _get_u128(b, 32), _get_u128(b, 48), _get_u128(b, 64), state, timestamp,
        )


@dataclass
class Transfer:
    """TigerBeetle's transfer layout; holds, captures, releases, debits and credits are transfers too."""

    id: int
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    pending_id: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timeout: int = 0
    ledger: int = 0
    code: int = 0
    flags: int = 0
    timestamp: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        for k, v in enumerate((self.id, self.debit_account_id, self.credit_account_id, self.amount, self.pending_id, self.user_data_128)):
            b[16 * k : 16 * k + 16] = _u128(v)
        struct.pack_into("<QIIIHHQ", b, 96, self.user_data_64, self.user_data_32, self.timeout, self.ledger, self.code, self.flags, self.timestamp)
        return bytes(b)

    @staticmethod
    def decode(b: bytes) -> "Transfer":
        ids = [_get_u128(b, 16 * k) for k in range(6)]
        user_data_64, user_data_32, timeout, ledger, code, flags, timestamp = struct.unpack_from("<QIIIHHQ", b, 96)
        return Transfer(*ids, user_data_64, user_data_32, timeout, ledger, code, flags, timestamp)


@dataclass
class StandingOrder:
    """A fixed amount every period (docs/protocol.md, "Standing order"); unit 1 seconds, 2 days,
    3 weeks, 4 months (on `day`, a day past a month's end meaning its last day)."""

    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: int
    code: int
    period: int = 1
    unit: int = 4
    day: int = 0
    first_due_at: int = 0
    end_at: int = 0
    count_max: int = 0
    catch_up: int = 0
    retry_attempts: int = 0
    retry_spacing_s: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    flags: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        for k, v in enumerate((self.id, self.debit_account_id, self.credit_account_id, self.amount)):
            b[16 * k : 16 * k + 16] = _u128(v)
        struct.pack_into("<QQQIIII", b, 64, self.first_due_at, self.end_at, self.user_data_64, self.count_max, self.period,
                         self.retry_spacing_s, self.user_data_32)
        struct.pack_into("<BBBB", b, 104, self.unit, self.day, self.catch_up, self.retry_attempts)
        struct.pack_into("<IHH", b, 112, self.ledger, self.code, self.flags)
        return bytes(b)


@dataclass
class Trigger:
    """Pays into `credit_account_id` from `debit_account_id` when its available balance falls
    below `threshold` (kind 1; `amount`, or with flag 4 up to `target`), or when it shows a debt
    of at most `threshold` (kind 2) (docs/protocol.md, "Trigger")."""

    id: int
    debit_account_id: int
    credit_account_id: int
    ledger: int
    code: int
    kind: int = 1
    amount: int = 0
    threshold: int = 0
    target: int = 0
    cap_amount: int = 0
    cap_count: int = 0
    cap_window: int = 0
    flags: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        values = (self.id, self.debit_account_id, self.credit_account_id, self.amount, self.threshold, self.target, self.cap_amount)
        for k, v in enumerate(values):
            b[16 * k : 16 * k + 16] = _u128(v)
        struct.pack_into("<IHHIBB", b, 112, self.ledger, self.code, self.flags, self.cap_count, self.kind, self.cap_window)
        return bytes(b)


@dataclass
class OrderChange:
    """Pause, resume, cancel or amend (`amount`: the new amount) a standing order or trigger."""

    order_id: int
    amount: int = 0
    flags: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        b[0:16] = _u128(self.order_id)
        b[16:32] = _u128(self.amount)
        struct.pack_into("<H", b, 32, self.flags)
        return bytes(b)


@dataclass
class Quote:
    """A rate between two ledgers for a time (docs/exchange.md): `rate / 10**rate_scale` minor units of `to_ledger` per minor unit of `from_ledger`."""

    id: int
    from_ledger: int
    to_ledger: int
    rate: int
    rate_scale: int
    from_liquidity_id: int
    to_liquidity_id: int
    validity_s: int
    code: int
    grace_s: int = 0
    customer_account_id: int = 0
    amount_max: int = 0
    user_data_64: int = 0
    flags: int = 0  # bit 0 linked, 1 multi_use
    timestamp: int = 0

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        values = [self.id, self.from_liquidity_id, self.to_liquidity_id, self.customer_account_id, self.amount_max]
        for k, v in enumerate(values):
            b[16 * k : 16 * k + 16] = _u128(v)
        struct.pack_into("<QQIIIIHHB", b, 80, self.rate, self.user_data_64, self.validity_s, self.grace_s,
                         self.from_ledger, self.to_ledger, self.code, self.flags, self.rate_scale)
        struct.pack_into("<Q", b, 120, self.timestamp)
        return bytes(b)


@dataclass
class Exchange:
    """An exchange (both legs) or, as kind PLACE_ORDER, an order on a quote (docs/exchange.md)."""

    id: int
    quote_id: int
    to_account_id: int
    amount: int
    to_id: int = 0
    from_account_id: int = 0
    pending_id: int = 0
    booked_at: int = 0
    user_data_32: int = 0
    flags: int = 0  # bit 0 linked, 1 buy_fixed, 2 order

    def encode(self) -> bytes:
        b = bytearray(RECORD_SIZE)
        values = [self.id, self.to_id, self.quote_id, self.from_account_id, self.to_account_id, self.amount, self.pending_id]
        for k, v in enumerate(values):
            b[16 * k : 16 * k + 16] = _u128(v)
        struct.pack_into("<QIH", b, 112, self.booked_at, self.user_data_32, self.flags)
        return bytes(b)


@dataclass
class OrderView:
    """An order as lookup orders returns it: its state and run history (docs/protocol.md, "Orders")."""

    id: int
    number: int
    status: int
    kind: int
    runs: int
    next_due: int
    amount: int
    history: list[tuple[str, int, int, ResultCode, int]]  # (event, run, at, code, amount)

    EVENTS = ("", "paid", "failed", "retrying", "skipped", "reminded", "over_cap", "capped")


def decode_orders(body: bytes) -> list[OrderView | None]:
    """Per id asked: its record, its state, then one record per history entry; one zero record where not found."""
    out: list[OrderView | None] = []
    recs = records(body)
    k = 0
    while k < len(recs):
        spec = recs[k]
        if spec == bytes(RECORD_SIZE):
            out.append(None)
            k += 1
            continue
        state = recs[k + 1]
        number, status, kind, _armed, _attempt = struct.unpack_from("<IBBBB", state, 0)
        _created, runs, next_due = struct.unpack_from("<QQQ", state, 8)
        (count,) = struct.unpack_from("<I", state, 112)
        history = []
        for entry in recs[k + 2 : k + 2 + count]:
            event, _attempt = entry[4], entry[5]
            at, run, code = struct.unpack_from("<QQI", entry, 8)
            history.append((OrderView.EVENTS[event], run, at, ResultCode(code), _get_u128(entry, 32)))
        out.append(OrderView(_get_u128(spec, 0), number, status, kind, runs, next_due, _get_u128(state, 48), history))
        k += 2 + count
    return out


@dataclass
class Command:
    """One command of a submit: its kind and record."""

    kind: Kind
    record: Ledger | Account | Transfer | StandingOrder | Trigger | OrderChange | Quote | Exchange


def encode_submit(request_id: int, commands: list[Command]) -> bytes:
    """n kind bytes, zero padding to a multiple of 16, then n 128-byte records."""
    if not 0 < len(commands) <= RECORDS_MAX:
        raise ValueError(f"a submit carries 1 to {RECORDS_MAX} commands, not {len(commands)}")
    kinds = bytes(int(c.kind) for c in commands)
    kinds += bytes(-len(kinds) % 16)
    body = kinds + b"".join(c.record.encode() for c in commands)
    return encode_frame(FrameType.REQUEST, Operation.SUBMIT, request_id, len(commands), body)


def encode_ids(request_id: int, operation: Operation, ids: list[int]) -> bytes:
    """A lookup: n 16-byte ids."""
    return encode_frame(FrameType.REQUEST, operation, request_id, len(ids), b"".join(_u128(i) for i in ids))


def encode_ledger_totals(request_id: int, ids: list[int]) -> bytes:
    """n u32 ledger ids, zero padding to a multiple of 16."""
    body = b"".join(struct.pack("<I", i) for i in ids)
    body += bytes(-len(body) % 16)
    return encode_frame(FrameType.REQUEST, Operation.LEDGER_TOTALS, request_id, len(ids), body)


def decode_results(body: bytes) -> list[ResultCode]:
    return [ResultCode(v) for (v,) in struct.iter_unpack("<I", body)]


def records(body: bytes) -> list[bytes]:
    return [body[k : k + RECORD_SIZE] for k in range(0, len(body), RECORD_SIZE)]


class EventType(enum.IntEnum):
    """A change-feed event's type (docs/protocol.md, "Change feed")."""

    COMMAND = 1
    TRANSFER = 2
    EXPIRY = 3
    RUN = 4
    PROGRESS = 5


SUBSCRIBE_LEDGERS_MAX = 24
EVENT_BYTES = 3 * 128


def encode_subscribe(request_id: int, from_seq: int = 0, from_index: int = 0, types: list[EventType] | None = None,
                     ledgers: list[int] | None = None, accounts: list[int] | None = None) -> bytes:
    """The subscription record (from_seq u64 @0, from_index u32 @8, types u32 @12, 24 ledgers u32
    @16, 16 zero bytes), then one 16-byte id per account."""
    ledgers, accounts = ledgers or [], accounts or []
    if len(ledgers) > SUBSCRIBE_LEDGERS_MAX:
        raise ValueError(f"at most {SUBSCRIBE_LEDGERS_MAX} ledgers")
    mask = 0
    for t in types or []:
        mask |= 1 << int(t)
    record = struct.pack("<QII", from_seq, from_index, mask) + b"".join(struct.pack("<I", l) for l in ledgers)
    record = record.ljust(128, b"\0")
    body = record + b"".join(_u128(a) for a in accounts)
    return encode_frame(FrameType.REQUEST, Operation.SUBSCRIBE, request_id, 1 + len(accounts), body)


@dataclass
class Event:
    """One change-feed event: its position (seq, index), what it is, and for transfers and
    expiries both accounts' balances right after it (debits_pending, debits_posted,
    credits_pending, credits_posted)."""

    seq: int
    index: int
    type: EventType
    detail: int
    result: ResultCode
    ledger: int
    timestamp: int
    debit_account_id: int
    credit_account_id: int
    record: bytes
    debit_balances: tuple[int, int, int, int]
    credit_balances: tuple[int, int, int, int]

    @staticmethod
    def decode(b: bytes) -> "Event":
        seq, index, kind, detail, zero, result, ledger, timestamp = struct.unpack("<QIBBHIIQ", b[:32])
        if zero or any(b[64:128]):
            raise FrameError("an event's reserved bytes are not zero", ProtocolError.RESERVED_NOT_ZERO)
        tail = b[256:384]
        side = lambda at: tuple(_get_u128(tail, at + 16 * k) for k in range(4))
        return Event(seq, index, EventType(kind), detail, ResultCode(result), ledger, timestamp, _get_u128(b, 32), _get_u128(b, 48),
                     b[128:256], side(0), side(64))


def decode_events(frame: Frame) -> list[Event]:
    """A reply frame of events, three 128-byte records each."""
    if frame.count % 3 or len(frame.body) != frame.count * 128:
        raise FrameError("an events frame's length does not fit its record count", ProtocolError.LENGTH_MISMATCH)
    return [Event.decode(frame.body[k : k + EVENT_BYTES]) for k in range(0, len(frame.body), EVENT_BYTES)]
