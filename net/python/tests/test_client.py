"""The Python client against a real server (BURSAR_ADDR=host:port, BURSAR_CERT=server.crt):
run by tools/tests/python.rs, which starts the server. Also checks that the client's result codes
are docs/result-codes.md's, so the two cannot drift."""

import asyncio
import os
import re
import sys
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bursar_client import EventType, Account, AccountFlags, Client, Command, Exchange, Kind, Ledger, OrderChange, Quote, ResultCode, StandingOrder, Transfer, Trigger  # noqa: E402,E501
from bursar_client.wire import _u128  # noqa: E402
import struct  # noqa: E402
from bursar_client import wire  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


class Offline(unittest.TestCase):
    def test_result_codes_are_the_documents(self):
        doc = (REPO / "docs" / "result-codes.md").read_text()
        rows = re.findall(r"^\| (\d+) \| `([a-z0-9_]+)` \|", doc, re.M)
        self.assertEqual({int(v): name for v, name in rows}, {c.value: c.name.lower() for c in ResultCode})

    def test_kinds_are_the_documents(self):
        doc = (REPO / "docs" / "protocol.md").read_text()
        table = doc[doc.index("| kind byte |") :].split("\n\n")[0]
        rows = re.findall(r"^\| (\d+) \| ([a-z_]+) \| ", table, re.M)
        self.assertEqual({int(v): name for v, name in rows}, {k.value: k.name.lower() for k in Kind})

    def test_records_use_the_documented_offsets(self):
        t = Transfer(id=1, amount=0x0102, ledger=7, code=9, flags=2, timestamp=42).encode()
        self.assertEqual((t[48:50], t[112:116], t[116:118], t[118:120]), (b"\x02\x01", b"\x07\0\0\0", b"\x09\0", b"\x02\0"))
        a = Account(id=5, ledger=2, code=1, state=4).encode()
        self.assertEqual((a[108], a[112:116]), (4, b"\x02\0\0\0"))
        self.assertEqual(wire.crc32c(b"123456789"), 0xE3069283)
        o = StandingOrder(id=1, debit_account_id=2, credit_account_id=3, amount=5, ledger=7, code=9, unit=4, day=31, first_due_at=11).encode()
        self.assertEqual((o[48], o[64], o[104], o[105], o[112:116]), (5, 11, 4, 31, b"\x07\0\0\0"))
        t = Trigger(id=1, debit_account_id=2, credit_account_id=3, ledger=7, code=9, kind=2, threshold=13, cap_window=3).encode()
        self.assertEqual((t[64], t[112:116], t[124], t[125]), (13, b"\x07\0\0\0", 2, 3))
        self.assertEqual(OrderChange(order_id=4, amount=6, flags=1).encode()[:33], bytes([4] + [0] * 15 + [6] + [0] * 15 + [1]))
        q = Quote(id=1, from_ledger=978, to_ledger=985, rate=43215, rate_scale=4, from_liquidity_id=2, to_liquidity_id=3, validity_s=900, code=7, grace_s=60).encode()
        self.assertEqual((q[80:88], q[96:100], q[100:104], q[104:108], q[112:114], q[116]), (_u128(43215)[:8], struct.pack("<I", 900), struct.pack("<I", 60), struct.pack("<I", 978), b"\x07\0", 4))
        e = Exchange(id=1, quote_id=5, to_account_id=6, amount=7, booked_at=9, flags=4).encode()
        self.assertEqual((e[32], e[64], e[80], e[112], e[124]), (5, 6, 7, 9, 4))

    def test_amounts_are_exact(self):
        eur = Ledger(id=978, currency="EUR", scale=2, settlement_account_id=1)
        self.assertEqual(eur.minor("12.50"), 1250)
        self.assertEqual(eur.amount(1250), Decimal("12.50"))
        with self.assertRaises(ValueError):
            eur.minor("0.001")
        with self.assertRaises(ValueError):
            eur.minor("-5")


async def session(host: str, port: int, cert: str) -> None:
    async with Client.connect(host, port, cert) as client:
        ledger = Ledger(id=978, currency="EUR", scale=2, settlement_account_id=1)
        alice = Account(id=10, ledger=978, code=10, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        bob = Account(id=11, ledger=978, code=10)
        setup = [Command(Kind.CREATE_LEDGER, ledger), Command(Kind.CREATE_ACCOUNT, alice), Command(Kind.CREATE_ACCOUNT, bob)]
        assert await client.submit(setup) == [ResultCode.OK] * 3
        topup = Transfer(id=100, credit_account_id=10, amount=25_000, ledger=978, code=6)
        assert await client.submit([Command(Kind.CREDIT, topup)]) == [ResultCode.OK]
        assert await client.transfer(101, 10, 11, "12.50", 978) == ResultCode.OK
        assert await client.transfer(101, 10, 11, "12.50", 978) == ResultCode.EXISTS, "a retry moves nothing twice"
        assert await client.transfer(102, 10, 11, "1000", 978) == ResultCode.EXCEEDS_CREDITS
        assert await client.transfer(102, 10, 11, "1", 978) == ResultCode.ID_ALREADY_FAILED
        hold = Transfer(id=103, debit_account_id=10, credit_account_id=11, amount=2_000, ledger=978, code=4, timeout=60)
        capture = Transfer(id=104, pending_id=103, amount=1_525)
        assert await client.submit([Command(Kind.HOLD, hold), Command(Kind.CAPTURE, capture)]) == [ResultCode.OK, ResultCode.OK]
        assert await client.balance(10) == Decimal("222.25"), await client.balance(10)
        assert await client.balance(11) == Decimal("27.75")
        found = await client.lookup_transfers([101, 999])
        assert found[0] is not None and found[0].amount == 1_250 and found[1] is None
        accounts = await client.lookup_accounts([10, 12])
        assert accounts[0] is not None and accounts[0].debits_posted == 1_250 + 1_525 and accounts[1] is None
        burst = await asyncio.gather(*(client.transfer(200 + k, 11, 10, "0.01", 978) for k in range(20)))
        assert burst == [ResultCode.OK] * 20, "concurrent requests on one connection"
        # A standing order due now (every 30 s) and a top-up trigger on bob: the server runs both.
        rent = StandingOrder(id=1, debit_account_id=10, credit_account_id=11, amount=100, ledger=978, code=7, unit=1, period=30)
        topup = Trigger(id=2, debit_account_id=10, credit_account_id=11, ledger=978, code=6, threshold=500, target=1_000, flags=4)
        assert await client.submit([Command(Kind.CREATE_STANDING_ORDER, rent), Command(Kind.CREATE_TRIGGER, topup)]) == [ResultCode.OK] * 2
        await asyncio.sleep(6)  # past the server's 5 s idle timeout: keep-alives hold the connection
        (order, trigger, missing) = await client.lookup_orders([1, 2, 3])
        assert order is not None and order.runs == 1 and order.history[0][:2] == ("paid", 1), order
        assert trigger is not None and missing is None
        assert await client.submit([Command(Kind.CANCEL_ORDER, OrderChange(order_id=1))]) == [ResultCode.OK]
        assert await client.balance(10) == Decimal("221.45"), await client.balance(10)
        # An exchange desk: 4.3215 PLN per EUR; bob sells 10.00 EUR, both legs in one command.
        pln = Ledger(id=985, currency="PLN", scale=2, settlement_account_id=2)
        desk_eur, desk_pln, bob_pln = Account(id=12, ledger=978, code=20), Account(id=20, ledger=985, code=20), Account(id=21, ledger=985, code=10)
        funding = Transfer(id=300, credit_account_id=20, amount=1_000_000, ledger=985, code=6)
        quote = Quote(id=5, from_ledger=978, to_ledger=985, rate=43215, rate_scale=4, from_liquidity_id=12, to_liquidity_id=20, validity_s=900, code=8)
        made = [Command(Kind.CREATE_LEDGER, pln)] + [Command(Kind.CREATE_ACCOUNT, a) for a in (desk_eur, desk_pln, bob_pln)]
        made += [Command(Kind.CREDIT, funding), Command(Kind.CREATE_QUOTE, quote)]
        assert await client.submit(made) == [ResultCode.OK] * 6
        swap = Exchange(id=301, to_id=302, quote_id=5, from_account_id=11, to_account_id=21, amount=1_000)
        assert await client.submit([Command(Kind.EXCHANGE, swap)]) == [ResultCode.OK]
        assert await client.submit([Command(Kind.EXCHANGE, swap)]) == [ResultCode.EXISTS]
        legs = await client.lookup_transfers([301, 302])
        assert [t.amount for t in legs if t] == [1_000, 4_321], legs
        # The change feed from the first entry: every command with its result, each transfer with
        # both balances right after it; resumed inside an entry, it skips what was seen.
        seen = []
        async for event in client.subscribe(from_seq=1):
            seen.append(event)
            if event.type == EventType.TRANSFER and Transfer.decode(event.record).id == 302:
                break
        assert seen[0].type == EventType.COMMAND and seen[0].detail == Kind.CREATE_LEDGER and seen[0].result == ResultCode.OK
        first_101 = next(e for e in seen if e.type == EventType.TRANSFER and Transfer.decode(e.record).id == 101)
        assert first_101.debit_account_id == 10 and first_101.credit_account_id == 11
        assert first_101.credit_balances[3] == 1_250, "credits posted on account 11 right after transfer 101"
        declined = [e for e in seen if e.type == EventType.COMMAND and e.result == ResultCode.EXCEEDS_CREDITS]
        assert len(declined) == 1 and Transfer.decode(declined[0].record).id == 102
        assert [(e.seq, e.index) for e in seen] == sorted((e.seq, e.index) for e in seen)
        again = []
        async for event in client.subscribe(from_seq=first_101.seq, from_index=first_101.index, types=[EventType.TRANSFER]):
            again.append(event)
            break
        assert (again[0].seq, again[0].index, again[0].record) == (first_101.seq, first_101.index, first_101.record)


class Online(unittest.TestCase):
    def test_a_session_against_a_real_server(self):
        addr = os.environ.get("BURSAR_ADDR")
        if not addr:
            self.skipTest("BURSAR_ADDR not set: tools/tests/python.rs starts a server and sets it")
        host, port = addr.rsplit(":", 1)
        asyncio.run(session(host, int(port), os.environ["BURSAR_CERT"]))


if __name__ == "__main__":
    unittest.main()
