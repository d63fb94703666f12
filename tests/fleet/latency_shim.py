#!/usr/bin/env python3
"""A TCP forwarder that stands for distance: it holds the first bytes a
client sends for DELAY ms, chosen by the client's address, then forwards
both ways untouched.  The fleet test puts one in front of each relay so
that each connector has a "near" relay and two "far" ones (this machine's
kernel has no sch_netem).  Bounded: at most --max-conns connections."""

import argparse
import asyncio
import sys


async def pipe(r, w):
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            w.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)   # IP:PORT
    ap.add_argument("--to", required=True)       # IP:PORT
    ap.add_argument("--delay", action="append", default=[])  # SRCIP=MS
    ap.add_argument("--max-conns", type=int, default=1024)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    delays = {k: int(v) / 1000.0 for k, v in (d.split("=") for d in a.delay)}
    to_host, to_port = a.to.rsplit(":", 1)
    live = [0]

    async def handle(cr, cw):
        if live[0] >= a.max_conns:
            cw.close()
            return
        live[0] += 1
        try:
            src = cw.get_extra_info("peername")[0]
            first = await asyncio.wait_for(cr.read(65536), 30)
            if not first:
                return
            if a.verbose:
                print("%s: %d ms" % (src, delays.get(src, 0) * 1000), flush=True)
            await asyncio.sleep(delays.get(src, 0))
            ur, uw = await asyncio.wait_for(asyncio.open_connection(to_host, int(to_port)), 5)
            uw.write(first)
            await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            live[0] -= 1
            cw.close()

    host, port = a.listen.rsplit(":", 1)
    srv = await asyncio.start_server(handle, host, int(port), reuse_address=True)
    print("shim listening on %s" % a.listen, flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
