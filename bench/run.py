#!/usr/bin/env python3
"""PageKite benchmarks on loopback: ours vs direct vs pagekite.py.

    python3 bench/run.py [--smoke] [--json out.json] [--setups a,b] [--scenarios 1,2]

Setups:  direct (client -> origin), ours (pagekiter + pagekitec),
         pk (pagekite.py relay + pagekite.py connector),
         ours@pk (pagekitec behind a pagekite.py relay),
         ours-tls (pagekiter + pagekitec, TLS on the tunnel).
Scenarios: 1 single-stream throughput, 2 keep-alive req/s and latency (wrk),
           3 many streams + memory, 4 CPU per GB (measured during 1),
           5 time to fly and relay restart, 6 = 1 and 2 for ours-tls,
           7 defaults under load (direct, and ours without -c: wrk c=256 and
           1,000 held streams; req/s, non-2xx, errors, RSS).
--smoke uses tiny sizes, checks every transfer (sha256) and exits 1 on any
failure (a non-2xx answer with default options included); it never asserts
speed.  See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pkbench as pb  # noqa: E402

MB = 1e6
MiB = 1024 * 1024

SETUPS = [
    # name, label, relay, connector, tls
    ("direct", "(a) direct", None, None, False),
    ("ours", "(b) ours", "ours", "ours", False),
    ("pk", "(c) pagekite.py", "pk", "pk", False),
    ("ours@pk", "(d) pagekitec+pk.py relay", "pk", "ours", False),
    ("ours-tls", "(b+6) ours, TLS tunnel", "ours", "ours", True),
]


def config(smoke):
    if smoke:
        return {
            "big": 2 * MiB, "big_pk": 2 * MiB, "verify_big": True, "check_size": 0,
            "wrk_secs": 1, "wrk_conns": [1, 8], "wrk_conns_fast": [1, 8],
            "bodies": [1024, 65536], "ka_count": 20,
            "many": 50, "many_pk": 50, "active": 10, "rounds": 2, "many_size": 64,
            "many_limit": 60, "ttf_reps": 1, "pk_restart_limit": 3.0,
            "defaults_conns": 256, "defaults_secs": 2, "defaults_body": 1024,
            "defaults_held": 1000,
        }
    return {
        "big": 1000 * 1000 * 1000, "big_pk": 100 * 1000 * 1000, "verify_big": False,
        "check_size": 64 * MiB,
        "wrk_secs": 5, "wrk_conns": [1, 64], "wrk_conns_fast": [1, 64, 256],
        "bodies": [1024, 65536], "ka_count": 20,
        "many": 10000, "many_pk": 500, "active": 1000, "rounds": 5, "many_size": 64,
        "many_limit": 240, "ttf_reps": 3, "pk_restart_limit": 180.0,
        "defaults_conns": 256, "defaults_secs": 5, "defaults_body": 1024,
        "defaults_held": 1000,
    }


def is_pk(setup):
    return setup.relay_kind == "pk" or setup.conn_kind == "pk"


class Runner:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.cfg = config(args.smoke)
        self.results = {}
        self.failures = []      # correctness failures (smoke: exit 1)
        self.warnings = []      # errors under load in full mode

    # Setups with Debian's pagekite.py relay: its known crashes under load
    # ("Too much data", refused connections; ../shared/PROTOCOL.md section 7)
    # are reported as warnings, not failures.  Our interop with it is asserted
    # by tests/e2e/test_interop_*.py.
    PK_RELAY_SETUPS = ("pk", "ours@pk")

    def fail(self, setup, scenario, msg):
        line = "%s / %s: %s" % (setup, scenario, msg)
        if setup in self.PK_RELAY_SETUPS:
            self.warnings.append("pagekite.py relay: " + line)
            print("  WARN " + line, flush=True)
            return
        self.failures.append(line)
        print("  FAIL " + line, flush=True)

    def put(self, setup, key, value):
        self.results.setdefault(setup, {})[key] = value

    # -------------------------------------------------------- scenarios
    def s5_fly(self, st):
        """Time to fly, then relay kill + restart -> live again (repeated).

        pagekite.py as connector needs about two minutes to notice a dead relay,
        so it gets one repetition and its own time limit; running out of that
        is recorded (restart_live_timeout_s) rather than counted as a failure."""
        pk_conn = st.conn_kind == "pk"
        reps = 1 if pk_conn else self.cfg["ttf_reps"]
        restart_limit = self.cfg["pk_restart_limit"] if pk_conn else 30.0
        fly, kill_live, restart_live = [], [], []
        for rep in range(reps):
            if rep == 0:
                st.start_relay()
            if st.connector is not None:
                st.connector.stop()
            t0 = time.monotonic()
            st.start_connector()
            fly.append(st.wait_live(timeout=60.0) - t0)
            tk = time.monotonic()
            st.relay.kill()
            st.start_relay()
            tr = time.monotonic()
            try:
                tl = st.wait_live(timeout=restart_limit,
                                  interval=0.02 if restart_limit <= 30 else 0.1)
            except pb.BenchError:
                if not pk_conn:
                    raise
                self.put(st.name, "restart_live_timeout_s", restart_limit)
                self.warnings.append("%s: not live again within %.0f s of a relay restart"
                                     % (st.name, restart_limit))
                print("  relay kill -> live: not within %.0f s" % restart_limit, flush=True)
                st.stop()
                st.start()
                break
            kill_live.append(tl - tk)
            restart_live.append(tl - tr)
        self.put(st.name, "fly_s", statistics.median(fly))
        self.put(st.name, "fly_max_s", max(fly))
        print("  time to fly %.3f s (max %.3f, %d runs)" % (statistics.median(fly), max(fly),
                                                          len(fly)), flush=True)
        if kill_live:
            self.put(st.name, "restart_live_s", statistics.median(kill_live))
            self.put(st.name, "restart_live_max_s", max(kill_live))
            self.put(st.name, "restart_up_live_s", statistics.median(restart_live))
            print("  relay kill -> live %.3f s (max %.3f), relay up -> live %.3f s"
                  % (statistics.median(kill_live), max(kill_live),
                     statistics.median(restart_live)), flush=True)

    def s1_throughput(self, st):
        size = self.cfg["big_pk"] if is_pk(st) else self.cfg["big"]
        self.put(st.name, "big_bytes", size)
        if self.cfg["check_size"]:
            pb.download(st.port, self.cfg["check_size"], verify=True)
            pb.upload(st.port, self.cfg["check_size"], verify=True)
            print("  sha256 check of %d MiB down+up ok" % (self.cfg["check_size"] // MiB),
                  flush=True)
        pids = st.pids() if not st.direct else {"origin": st.origin.proc.pid}
        cpu0 = {k: pb.proc_cpu_seconds(p) for k, p in pids.items()}
        verify = self.cfg["verify_big"]
        d = pb.download(st.port, size, verify=verify, timeout=600)
        u = pb.upload(st.port, size, verify=verify, timeout=600)
        cpu1 = {k: pb.proc_cpu_seconds(p) for k, p in pids.items()}
        dl = d["bytes"] / MB / d["seconds"]
        ul = u["bytes"] / MB / u["seconds"]
        self.put(st.name, "dl_MBps", dl)
        self.put(st.name, "ul_MBps", ul)
        gb = (d["bytes"] + u["bytes"]) / 1e9
        total = 0.0
        for k in pids:
            if cpu0[k] is not None and cpu1[k] is not None:
                v = (cpu1[k] - cpu0[k]) / gb
                self.put(st.name, "cpu_%s_s_per_GB" % k, v)
                total += v
        if not st.direct:
            self.put(st.name, "cpu_total_s_per_GB", total)
        print("  %s MB: download %.1f MB/s, upload %.1f MB/s; CPU %s s/GB"
              % (size / MB, dl, ul,
                 ", ".join("%s %.2f" % (k, self.results[st.name].get("cpu_%s_s_per_GB" % k, 0))
                           for k in pids)), flush=True)

    def s2_wrk(self, st):
        conns = self.cfg["wrk_conns"] if is_pk(st) else self.cfg["wrk_conns_fast"]
        for body in self.cfg["bodies"]:
            try:
                pb.keepalive_check(st.port, body, self.cfg["ka_count"])
            except (OSError, pb.BenchError) as e:
                self.fail(st.name, "2", "%d x %d KiB on one keep-alive connection: %s: %s"
                          % (self.cfg["ka_count"], body // 1024, type(e).__name__, e))
            for c in conns:
                r = pb.wrk(st.port, "/bytes/%d" % body, c, self.cfg["wrk_secs"])
                key = "wrk_%dK_c%d" % (body // 1024, c)
                self.put(st.name, key + "_rps", r["rps"])
                self.put(st.name, key + "_p50_ms", r["p50_ms"])
                self.put(st.name, key + "_p99_ms", r["p99_ms"])
                self.put(st.name, key + "_errors", r["errors"] + r["non2xx"])
                print("  wrk %2d KiB c=%-3d %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  "
                      "errors %d non-2xx %d" % (body // 1024, c, r["rps"], r["p50_ms"] or -1,
                                               r["p99_ms"] or -1, r["errors"], r["non2xx"]),
                      flush=True)
                if r["non2xx"] or r["errors"]:
                    msg = "wrk %d KiB c=%d: %d socket errors, %d non-2xx" % (
                        body // 1024, c, r["errors"], r["non2xx"])
                    if self.smoke or r["non2xx"]:
                        self.fail(st.name, "2", msg)
                    else:
                        self.warnings.append("%s: %s" % (st.name, msg))
                if r["requests"] <= 0:
                    self.warnings.append("%s: wrk %d KiB c=%d: no request completed"
                                         % (st.name, body // 1024, c))

    def s3_many(self, st):
        n = self.cfg["many_pk"] if is_pk(st) else self.cfg["many"]
        pids = st.pids()
        mem = {}

        def on_phase(phase):
            for k, p in pids.items():
                m = pb.proc_mem_kib(p)
                mem["%s_%s" % (k, phase)] = m
        for k, p in pids.items():
            mem["%s_before" % k] = pb.proc_mem_kib(p)
        r = pb.many_streams(st.port, n, self.cfg["active"], self.cfg["rounds"],
                            self.cfg["many_size"], self.cfg["many_limit"], on_phase,
                            open_conc=16 if st.relay_kind == "pk" else 200)
        self.put(st.name, "many_n", n)
        self.put(st.name, "many_failures", r["failures"])
        self.put(st.name, "many_open_s", r["open_s"])
        self.put(st.name, "many_active_rps", r["active_rps"])
        for k in pids:
            idle = mem.get("%s_idle" % k, {})
            act = mem.get("%s_active" % k, {})
            before = mem.get("%s_before" % k, {})
            if "VmRSS" in idle:
                self.put(st.name, "%s_rss_idle_MiB" % k, idle["VmRSS"] / 1024)
            if "VmHWM" in act:
                self.put(st.name, "%s_hwm_MiB" % k, act["VmHWM"] / 1024)
            if "VmRSS" in before:
                self.put(st.name, "%s_rss_before_MiB" % k, before["VmRSS"] / 1024)
        print("  %d streams: opened %d in %.1f s, active %d x %d req ok %d (%.0f req/s), "
              "final ok %d, failures %d %s" % (n, r["opened"], r["open_s"], r["active"],
                                              self.cfg["rounds"], r["active_ok"],
                                              r["active_rps"] or 0, r["final_ok"],
                                              r["failures"], r["errors"] or ""), flush=True)
        for k in pids:
            print("    %s RSS before %.1f MiB, idle %.1f MiB, HWM %.1f MiB" % (
                k, self.results[st.name].get("%s_rss_before_MiB" % k, -1),
                self.results[st.name].get("%s_rss_idle_MiB" % k, -1),
                self.results[st.name].get("%s_hwm_MiB" % k, -1)), flush=True)
        if r["failures"]:
            msg = "%d of %d streams failed: %s" % (r["failures"], n, r["errors"])
            if self.smoke:
                self.fail(st.name, "3", msg)
            else:
                self.warnings.append("%s: %s" % (st.name, msg))

    def s7_defaults(self, st):
        """Defaults under load: pagekiter + pagekitec with no -c (their defaults),
        N idle keep-alive streams held through the relay (RSS per held stream),
        then, on fresh processes, wrk -c256 on a small page (req/s, non-2xx,
        errors, RSS per active stream).  direct runs the same wrk for the ratio.  A non-2xx answer or a
        lost held stream is a failure: the defaults must serve that load."""
        c, secs, body = (self.cfg["defaults_conns"], self.cfg["defaults_secs"],
                         self.cfg["defaults_body"])
        path = "/bytes/%d" % body
        if st.direct:
            r = pb.wrk(st.port, path, c, secs)
            self.put(st.name, "defaults_rps", r["rps"])
            self.put(st.name, "defaults_p99_ms", r["p99_ms"])
            print("  wrk %d B c=%d: %.0f req/s, p99 %.3f ms, errors %d, non-2xx %d"
                  % (body, c, r["rps"], r["p99_ms"] or -1, r["errors"], r["non2xx"]),
                  flush=True)
            return
        dflt = {"connector": pb.default_max_conns(pb.PAGEKITEC),
                "relay": pb.default_max_conns(pb.PAGEKITER)}
        for k, v in dflt.items():
            self.put(st.name, "defaults_%s_max_conns" % k, v)
        print("  default -c: pagekitec %s, pagekiter %s" % (dflt["connector"], dflt["relay"]),
              flush=True)
        ds = pb.Setup(st.name + "-defaults", st.label + ", default options", st.relay_kind,
                      st.conn_kind, st.workdir.parent, st.origin, max_conns=None)
        n = self.cfg["defaults_held"]
        mem = {}

        def snap(phase):
            mem[phase] = {k: pb.proc_mem_kib(p) for k, p in ds.pids().items()}

        def fresh():
            # Each phase gets new processes, so neither inherits the other's
            # high-water mark (pool blocks are reused, never given back).
            ds.stop()
            ds.start()
            time.sleep(0.5)
        try:
            fresh()
            snap("idle")
            h = pb.many_streams(ds.port, n, min(n, 100), 2, 64, self.cfg["many_limit"],
                                lambda phase: snap("held_" + phase))
            fresh()
            snap("before_wrk")
            r = pb.wrk(ds.port, path, c, secs)
            snap("after_wrk")
            if not (ds.relay.alive and ds.connector.alive):
                raise pb.BenchError("a process exited under load\n" + ds.tails())
        finally:
            ds.stop()
        self.put(st.name, "defaults_rps", r["rps"])
        self.put(st.name, "defaults_p99_ms", r["p99_ms"])
        self.put(st.name, "defaults_non2xx", r["non2xx"])
        self.put(st.name, "defaults_errors", r["errors"])
        self.put(st.name, "defaults_held_n", n)
        self.put(st.name, "defaults_held_failures", h["failures"])
        print("  %d held streams: opened %d, failures %d %s" % (n, h["opened"], h["failures"],
                                                              h["errors"] or ""), flush=True)
        print("  wrk %d B c=%d: %.0f req/s, p99 %.3f ms, errors %d, non-2xx %d"
              % (body, c, r["rps"], r["p99_ms"] or -1, r["errors"], r["non2xx"]), flush=True)
        for k in mem["idle"]:
            idle = mem["idle"][k].get("VmRSS")
            held = mem.get("held_idle", {}).get(k, {}).get("VmRSS")
            before = mem["before_wrk"][k].get("VmRSS")
            hwm = mem["after_wrk"][k].get("VmHWM")
            if None in (idle, held, before, hwm):
                continue
            self.put(st.name, "%s_defaults_rss_idle_MiB" % k, idle / 1024)
            self.put(st.name, "%s_defaults_rss_held_MiB" % k, held / 1024)
            self.put(st.name, "%s_defaults_KiB_per_held" % k, (held - idle) / max(1, h["opened"]))
            self.put(st.name, "%s_defaults_hwm_MiB" % k, hwm / 1024)
            self.put(st.name, "%s_defaults_KiB_per_active" % k, max(0, hwm - before) / c)
            print("    %s RSS idle %.1f MiB, %d held %.1f MiB (%.1f KiB each), VmHWM after "
                  "wrk c=%d %.1f MiB (%.1f KiB per active stream)"
                  % (k, idle / 1024, h["opened"], held / 1024, (held - idle) / max(1, h["opened"]),
                     c, hwm / 1024, max(0, hwm - before) / c), flush=True)
        if r["non2xx"] or r["errors"]:
            msg = "default options, wrk %d B c=%d: %d non-2xx, %d socket errors" % (
                body, c, r["non2xx"], r["errors"])
            if self.smoke or r["non2xx"]:
                self.fail(st.name, "7", msg)
            else:
                self.warnings.append("%s: %s" % (st.name, msg))
        if h["failures"]:
            msg = "default options: %d of %d held streams failed: %s" % (
                h["failures"], n, h["errors"])
            if self.smoke:
                self.fail(st.name, "7", msg)
            else:
                self.warnings.append("%s: %s" % (st.name, msg))

    # -------------------------------------------------------- driver
    def run(self):
        args = self.args
        nofile = pb.raise_nofile()
        want_setups = args.setups.split(",") if args.setups else [s[0] for s in SETUPS]
        want_scen = set(args.scenarios.split(",")) if args.scenarios else set("1234567")
        # Each process (this client, relay, connector, origin) holds one fd per stream.
        for key in ("many", "defaults_held"):
            if nofile < self.cfg[key] + 200:
                self.cfg[key] = max(100, nofile - 200)
                print("note: RLIMIT_NOFILE %d, %s lowered to %d" % (nofile, key, self.cfg[key]))
        workdir = Path(tempfile.mkdtemp(prefix="pkbench-"))
        print("work dir %s (logs)" % workdir, flush=True)
        origin = pb.Origin(workdir).start()
        tls = None
        try:
            for name, label, relay, conn, want_tls in SETUPS:
                if name not in want_setups:
                    continue
                if want_tls and "6" not in want_scen:
                    continue
                if want_tls and tls is None:
                    tls = pb.make_pki(workdir / "pki")
                missing = [str(p) for p, need in (
                    (pb.PAGEKITEC, conn == "ours"), (pb.PAGEKITER, relay == "ours"),
                    (pb.PAGEKITE_PY, "pk" in (relay, conn))) if need and not os.access(p, os.X_OK)]
                if missing:
                    self.fail(name, "setup", "missing executables: %s" % ", ".join(missing))
                    continue
                n = self.cfg["many_pk"] if "pk" in (relay, conn) else self.cfg["many"]
                st = pb.Setup(name, label, relay, conn, workdir, origin,
                              tls=tls if want_tls else None, max_conns=n + 100,
                              connector_args=args.connector_args.split())
                print("== %s" % label, flush=True)
                scen = ["1", "2"] if want_tls else ["5", "1", "2", "3"]
                scen = [s for s in scen if s in want_scen or (want_tls and "6" in want_scen)]
                # 7: our two tools with their default options, and direct for the ratio.
                if "7" in want_scen and not want_tls and name in ("direct", "ours"):
                    scen.append("7")
                t_setup = time.monotonic()
                try:
                    if not st.direct:
                        if "5" in scen:
                            self.scenario(st, "5", self.s5_fly)
                        if (any(s in scen for s in "123") and
                                not (st.connector and st.connector.alive and st.relay.alive)):
                            st.stop()
                            st.start()
                    for s in scen:
                        if s == "5":
                            continue
                        fn = {"1": self.s1_throughput, "2": self.s2_wrk,
                              "3": self.s3_many, "7": self.s7_defaults}[s]
                        if st.relay_kind == "pk":
                            # pagekite.py relays stopped accepting after heavy
                            # load: give each scenario a fresh one.
                            st.stop()
                            st.start()
                        self.scenario(st, s, fn)
                except Exception as e:  # noqa: BLE001 - report, go on with the next setup
                    self.fail(name, "setup", "%s: %s" % (type(e).__name__, e))
                finally:
                    st.stop()
                print("  (%s took %.0f s)" % (name, time.monotonic() - t_setup), flush=True)
        finally:
            origin.stop()
        self.report(workdir)
        if not self.failures and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 1 if self.failures else 0

    def scenario(self, st, s, fn):
        try:
            fn(st)
        except Exception as e:  # noqa: BLE001 - a failed scenario is reported
            detail = "" if isinstance(e, pb.BenchError) else "\n" + traceback.format_exc()
            self.fail(st.name, s, "%s: %s%s" % (type(e).__name__, e, detail))
            tails = st.tails()
            if tails:
                print(tails, flush=True)
            # Give the next scenario a fresh, working setup.
            if not st.direct:
                st.stop()
                st.start()

    # -------------------------------------------------------- report
    def rows(self):
        """(label, key, unit, higher_is_better)."""
        rows = [
            ("1 download, single stream", "dl_MBps", "MB/s", True),
            ("1 upload, single stream", "ul_MBps", "MB/s", True),
        ]
        for body in self.cfg["bodies"]:
            for c in sorted(set(self.cfg["wrk_conns_fast"])):
                k = "wrk_%dK_c%d" % (body // 1024, c)
                rows.append(("2 %d KiB c=%d" % (body // 1024, c), k + "_rps", "req/s", True))
                rows.append(("2 %d KiB c=%d p50" % (body // 1024, c), k + "_p50_ms", "ms",
                             False))
                rows.append(("2 %d KiB c=%d p99" % (body // 1024, c), k + "_p99_ms", "ms",
                             False))
        rows += [
            ("3 streams held (N)", "many_n", "", None),
            ("3 stream failures", "many_failures", "", False),
            ("3 connector RSS idle N", "connector_rss_idle_MiB", "MiB", False),
            ("3 connector VmHWM", "connector_hwm_MiB", "MiB", False),
            ("3 relay RSS idle N", "relay_rss_idle_MiB", "MiB", False),
            ("3 relay VmHWM", "relay_hwm_MiB", "MiB", False),
            ("3 1000 active req/s", "many_active_rps", "req/s", True),
            ("4 CPU connector", "cpu_connector_s_per_GB", "s/GB", False),
            ("4 CPU relay", "cpu_relay_s_per_GB", "s/GB", False),
            ("4 CPU connector+relay", "cpu_total_s_per_GB", "s/GB", False),
            ("4 CPU origin (direct)", "cpu_origin_s_per_GB", "s/GB", False),
            ("5 time to fly", "fly_s", "s", False),
            ("5 relay kill -> live", "restart_live_s", "s", False),
            ("5 relay kill -> live, max", "restart_live_max_s", "s", False),
            ("5 relay up -> live", "restart_up_live_s", "s", False),
            ("5 not live again within", "restart_live_timeout_s", "s", None),
            ("7 default -c connector", "defaults_connector_max_conns", "", None),
            ("7 default -c relay", "defaults_relay_max_conns", "", None),
            ("7 defaults c=%d req/s" % self.cfg["defaults_conns"], "defaults_rps", "req/s",
             True),
            ("7 defaults c=%d p99" % self.cfg["defaults_conns"], "defaults_p99_ms", "ms", False),
            ("7 defaults non-2xx", "defaults_non2xx", "", None),
            ("7 defaults socket errors", "defaults_errors", "", None),
            ("7 defaults held streams", "defaults_held_n", "", None),
            ("7 defaults held failures", "defaults_held_failures", "", None),
            ("7 connector RSS idle", "connector_defaults_rss_idle_MiB", "MiB", None),
            ("7 connector RSS N held", "connector_defaults_rss_held_MiB", "MiB", None),
            ("7 connector per held", "connector_defaults_KiB_per_held", "KiB", None),
            ("7 connector VmHWM c=%d" % self.cfg["defaults_conns"], "connector_defaults_hwm_MiB",
             "MiB", None),
            ("7 connector per active", "connector_defaults_KiB_per_active", "KiB", None),
            ("7 relay RSS idle", "relay_defaults_rss_idle_MiB", "MiB", None),
            ("7 relay RSS N held", "relay_defaults_rss_held_MiB", "MiB", None),
            ("7 relay per held", "relay_defaults_KiB_per_held", "KiB", None),
            ("7 relay VmHWM c=%d" % self.cfg["defaults_conns"], "relay_defaults_hwm_MiB", "MiB",
             None),
            ("7 relay per active", "relay_defaults_KiB_per_active", "KiB", None),
        ]
        return rows

    def table(self):
        names = [s[0] for s in SETUPS if s[0] in self.results]
        base = self.results.get("direct", {})
        pk = self.results.get("pk", {})
        lines = ["%-28s %-10s %14s %10s %10s" % ("metric", "setup", "value", "x direct",
                                                "x pk.py"),
                 "-" * 76]
        for label, key, unit, _hib in self.rows():
            first = True
            for name in names:
                v = self.results[name].get(key)
                if v is None:
                    continue
                rd = rp = ""
                if _hib is not None:
                    if base.get(key) and name != "direct":
                        rd = "%.2fx" % (v / base[key])
                    if pk.get(key) and name != "pk":
                        rp = "%.2fx" % (v / pk[key])
                val = ("%.0f" % v if abs(v) >= 100 else "%.3f" % v if abs(v) < 10
                       else "%.1f" % v) + (" " + unit if unit else "")
                lines.append("%-28s %-10s %14s %10s %10s" % (label if first else "", name, val,
                                                             rd, rp))
                first = False
        return "\n".join(lines)

    def targets(self):
        o = self.results.get("ours", {})
        d = self.results.get("direct", {})
        p = self.results.get("pk", {})
        out = []

        def check(name, ok, detail):
            if ok is None:
                out.append({"target": name, "met": None, "detail": "not measured"})
            else:
                out.append({"target": name, "met": bool(ok), "detail": detail})

        def ratio(a, b):
            return a / b if a is not None and b else None
        for k, what in (("dl_MBps", "download"), ("ul_MBps", "upload")):
            r = ratio(o.get(k), d.get(k))
            check("1 GB %s >= 0.5x direct" % what, None if r is None else r >= 0.5,
                  "%.2fx" % r if r is not None else "")
            r = ratio(o.get(k), p.get(k))
            check("1 GB %s >= 10x pagekite.py" % what, None if r is None else r >= 10,
                  "%.1fx" % r if r is not None else "")
        r = ratio(o.get("wrk_1K_c64_rps"), d.get("wrk_1K_c64_rps"))
        check("req/s c=64 1 KiB >= 0.5x direct", None if r is None else r >= 0.5,
              "%.2fx" % r if r is not None else "")
        if o.get("wrk_1K_c64_p99_ms") is not None and d.get("wrk_1K_c64_p99_ms") is not None:
            added = o["wrk_1K_c64_p99_ms"] - d["wrk_1K_c64_p99_ms"]
            check("added p99 c=64 1 KiB < 1 ms", added < 1.0, "%+.3f ms" % added)
        else:
            check("added p99 c=64 1 KiB < 1 ms", None, "")
        if o.get("many_n") is not None:
            hwm = o.get("connector_hwm_MiB")
            check("%d idle streams: connector RSS <= 64 MiB" % o["many_n"],
                  hwm is not None and hwm <= 64, "VmHWM %.1f MiB" % (hwm or -1))
            check("%d streams: 0 failures" % o["many_n"], o.get("many_failures") == 0,
                  "%s failures" % o.get("many_failures"))
        else:
            check("10000 idle streams: connector RSS <= 64 MiB", None, "")
        v = o.get("restart_live_max_s")
        check("relay restart -> live <= 1 s", None if v is None else v <= 1.0,
              "max %.3f s (median %.3f s)" % (v, o.get("restart_live_s")) if v else "")
        c = self.cfg["defaults_conns"]
        if o.get("defaults_non2xx") is not None:
            bad = o["defaults_non2xx"] + o.get("defaults_held_failures", 0)
            check("default options: wrk c=%d, %d held, 0 refused" % (c, o["defaults_held_n"]),
                  bad == 0, "%d non-2xx, %d held failures"
                  % (o["defaults_non2xx"], o.get("defaults_held_failures", 0)))
        else:
            check("default options: wrk c=%d, 0 refused" % c, None, "")
        return out

    def report(self, workdir):
        table = self.table()
        targets = self.targets()
        now = datetime.datetime.now().astimezone()
        meta = {
            "date": now.isoformat(timespec="seconds"),
            "mode": "smoke" if self.smoke else "full",
            "machine": "%s, %d cores, %s" % (platform.node(), os.cpu_count() or 0, cpu_model()),
            "kernel": platform.release(),
            "sizes": {k: v for k, v in self.cfg.items()},
            "setups": {s[0]: s[1] for s in SETUPS},
            "build_dir": str(pb.BUILD_DIR),
            "connector_args": self.args.connector_args,
        }
        print()
        print("PageKite bench, %s, %s, %s" % (meta["mode"], meta["date"], meta["machine"]))
        print(table)
        print()
        print("targets (ours):")
        for t in targets:
            mark = {True: "MET  ", False: "SHORT", None: "n/a  "}[t["met"]]
            print("  [%s] %-44s %s" % (mark, t["target"], t["detail"]))
        if self.warnings:
            print("warnings:")
            for w in self.warnings:
                print("  " + w)
        if self.failures:
            print("FAILURES (%d):" % len(self.failures))
            for f in self.failures:
                print("  " + f.splitlines()[0])
            print("logs kept in %s" % workdir)
        doc = {"meta": meta, "results": self.results, "targets": targets,
               "failures": self.failures, "warnings": self.warnings, "table": table}
        path = self.args.json or str(workdir / "results.json")
        if self.args.json:
            Path(path).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            print("JSON written to %s" % path)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="seconds, tiny sizes, check every transfer, exit 1 on failure")
    ap.add_argument("--json", metavar="FILE", help="write results as JSON to FILE")
    ap.add_argument("--setups", help="comma list of: " + ",".join(s[0] for s in SETUPS))
    ap.add_argument("--scenarios", help="comma list of 1,2,3,5,6,7 (4 comes with 1)")
    ap.add_argument("--connector-args", default="", metavar="ARGS",
                    help="extra pagekitec options (one string), e.g. '-H'")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = ap.parse_args()
    t0 = time.monotonic()
    rc = Runner(args).run()
    print("total %.0f s, exit %d" % (time.monotonic() - t0, rc))
    return rc


if __name__ == "__main__":
    sys.exit(main())
