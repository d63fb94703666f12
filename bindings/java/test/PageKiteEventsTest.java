// PageKiteEventsTest - the events API through the SWIG Java binding, on the
// real library (ctest runs it; the stub library of tests/spec has no events).
//
//   java -cp pagekite-VERSION-linux-x86_64.jar:pagekite-events-test.jar PageKiteEventsTest
//
// 10,000 log events (each a refused call after start: one error line;
// addFrontendCertname is before-start only, addKite works any time) are
// read back with nextEvents() one struct at a time: every one arrives, in
// order, with no gap and no PK_EVENT_LOST.  Exit status 0 when all is well.

import net.pagekite.lib.PageKiteAPI;
import net.pagekite.lib.pagekite_event;

public final class PageKiteEventsTest {
    private static final int N = 10000;

    private static void expect(boolean cond, String what) {
        if (!cond) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) {
        int flags = PageKiteAPI.PK_WITH_IPV4 | PageKiteAPI.PK_WITHOUT_SERVICE_FRONTENDS;
        expect(PageKiteAPI.init("javaevents", 2, 2, 16, null, flags, 0), "init");
        expect(PageKiteAPI.addFrontend("127.0.0.1", 9) >= 0, "addFrontend");
        expect(PageKiteAPI.setLogMask(PageKiteAPI.PK_LOG_ALL) == 0, "setLogMask");
        expect(PageKiteAPI.threadStart() == 0, "threadStart: " + PageKiteAPI.lastError());
        pagekite_event ev = new pagekite_event();
        long after = 0;
        // Skip what start-up logged: from the newest event on.
        ev.setVersion(PageKiteAPI.PK_EVENT_VERSION);
        while (PageKiteAPI.nextEvents(after, ev, 1, 0) == 1) {
            after = ev.getSeq();
        }
        int seen = 0, others = 0, lost = 0, badOrder = 0;
        long deadline = System.currentTimeMillis() + 60000;
        for (int i = 0; i < N; i++) {
            // A configuration call after start fails and logs one error line.
            expect(PageKiteAPI.addFrontendCertname("k" + i + ".test") == -1,
                   "addFrontendCertname after start must fail");
            while (PageKiteAPI.nextEvents(after, ev, 1, 0) == 1) {
                if (ev.getSeq() != after + 1) badOrder++;
                after = ev.getSeq();
                if (ev.getKind() == PageKiteAPI.PK_EVENT_LOST) lost++;
                else if (ev.getKind() == PageKiteAPI.PK_EVENT_LOG
                         && ev.getText().startsWith("pagekite_add_frontend_certname: only allowed before")) seen++;
                else others++;
            }
            expect(System.currentTimeMillis() < deadline, "took over 60 s");
        }
        System.out.println("events: " + seen + " log lines in order, " + others + " other events, "
                           + lost + " lost, " + badOrder + " out of order");
        expect(seen == N, "saw " + seen + " of " + N + " log lines");
        expect(lost == 0 && badOrder == 0, "no gaps");
        ev.setVersion(0);
        expect(PageKiteAPI.nextEvents(0, ev, 1, 0) == -1, "an unknown version is refused");
        expect(PageKiteAPI.lastErrorCode() == PageKiteAPI.PK_EINVAL, "PK_EINVAL");
        expect(PageKiteAPI.threadStop() == 0, "threadStop");
        expect(PageKiteAPI.free() == 0, "free");
        System.out.println("ok   events in order without gaps (" + N + ")");
    }
}
