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

from bursar_client import Account, AccountFlags, Client, Command, Kind, Ledger, ResultCode, Transfer  # noqa: E402
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
        await asyncio.sleep(6)  # past the server's 5 s idle timeout: keep-alives hold the connection
        assert await client.balance(10) == Decimal("222.45")


class Online(unittest.TestCase):
    def test_a_session_against_a_real_server(self):
        addr = os.environ.get("BURSAR_ADDR")
        if not addr:
            self.skipTest("BURSAR_ADDR not set: tools/tests/python.rs starts a server and sets it")
        host, port = addr.rsplit(":", 1)
        asyncio.run(session(host, int(port), os.environ["BURSAR_CERT"]))


if __name__ == "__main__":
    unittest.main()
