// PageKiteAPITest - plain-main test of the SWIG Java binding (no JUnit needed).
//
// Run (what ctest does):
//   java -Djava.library.path=DIR_OF_libpagekite_jni -cp pagekite.jar:pagekite-test.jar PageKiteAPITest
// Each check prints "ok"/"FAIL"; the last line is "N passed, N failed" and the
// exit status is non-zero if anything failed.

import java.util.ArrayList;
import java.util.List;

import net.pagekite.lib.PageKiteAPI;

public final class PageKiteAPITest {
    interface Check {
        void run() throws Exception;
    }

    private static final List<String> failures = new ArrayList<>();
    private static int passed;

    private static void check(String name, Check body) {
        try {
            body.run();
            passed++;
            System.out.println("ok   " + name);
        } catch (Throwable t) {
            failures.add(name);
            System.out.println("FAIL " + name + ": " + t);
        }
    }

    private static void expect(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    private static boolean isStatus(int s) {
        return s == PageKiteAPI.PK_STATUS_STARTUP || s == PageKiteAPI.PK_STATUS_CONNECTING
            || s == PageKiteAPI.PK_STATUS_UPDATING_DNS || s == PageKiteAPI.PK_STATUS_FLYING
            || s == PageKiteAPI.PK_STATUS_PROBLEMS || s == PageKiteAPI.PK_STATUS_REJECTED
            || s == PageKiteAPI.PK_STATUS_NO_NETWORK;
    }

    // ---- checks that need no manager ----

    static void constants() {
        // Values of the libpagekite reference (PageKiteAPI.PK_*).
        expect(PageKiteAPI.PK_VERSION.startsWith("0.92."), "PK_VERSION is " + PageKiteAPI.PK_VERSION);
        expect(PageKiteAPI.PK_WITH_SSL == 0x0001, "PK_WITH_SSL");
        expect(PageKiteAPI.PK_WITH_IPV4 == 0x0002, "PK_WITH_IPV4");
        expect(PageKiteAPI.PK_WITH_IPV6 == 0x0004, "PK_WITH_IPV6");
        expect(PageKiteAPI.PK_LOG_TUNNEL_DATA == 0x000100, "PK_LOG_TUNNEL_DATA");
        expect(PageKiteAPI.PK_LOG_TUNNEL_CONNS == 0x000400, "PK_LOG_TUNNEL_CONNS");
        expect(PageKiteAPI.PK_LOG_BE_DATA == 0x001000, "PK_LOG_BE_DATA");
        expect(PageKiteAPI.PK_LOG_BE_HEADERS == 0x002000, "PK_LOG_BE_HEADERS");
        expect(PageKiteAPI.PK_LOG_BE_CONNS == 0x004000, "PK_LOG_BE_CONNS");
        expect(PageKiteAPI.PK_LOG_MANAGER_INFO == 0x020000, "PK_LOG_MANAGER_INFO");
        expect(PageKiteAPI.PK_LOG_TRACE == 0x080000, "PK_LOG_TRACE");
        expect(PageKiteAPI.PK_LOG_LUA_DEBUG == 0x008000, "PK_LOG_LUA_DEBUG");
        expect(PageKiteAPI.PK_LOG_LUA_INFO == 0x000800, "PK_LOG_LUA_INFO");
        expect(PageKiteAPI.PK_LOG_ERROR == 0x100000, "PK_LOG_ERROR");
        expect(PageKiteAPI.PK_LOG_ALL == 0xffff00, "PK_LOG_ALL");
        expect(PageKiteAPI.PK_LOG_ERRORS == (PageKiteAPI.PK_LOG_ERROR | PageKiteAPI.PK_LOG_MANAGER_ERROR),
               "PK_LOG_ERRORS");
    }

    static void versionMatches() {
        // The loaded library must be the one the binding was generated for.
        expect(PageKiteAPI.versionNumber() == PageKiteAPI.PK_VERSION_NUMBER,
               "versionNumber() " + PageKiteAPI.versionNumber() + " != PK_VERSION_NUMBER");
    }

    static void callsWithoutManagerFail() {
        // No init yet: calls on the process-wide manager fail cleanly.
        expect(PageKiteAPI.getStatus() == -1, "getStatus without a manager");
        expect(PageKiteAPI.free() == -1, "free without a manager");
        String err = PageKiteAPI.lastError();
        expect(err != null && !err.isEmpty(), "lastError after a failure: '" + err + "'");
    }

    // ---- one manager's lifecycle (no network: nothing is started) ----

    static void lifecycle() {
        int flags = PageKiteAPI.PK_WITH_IPV4 | PageKiteAPI.PK_WITHOUT_SERVICE_FRONTENDS;
        expect(PageKiteAPI.init("javatest", 4, 4, 16, null, flags, 0), "init");
        try {
            expect(!PageKiteAPI.init("javatest", 4, 4, 16, null, flags, 0),
                   "second init while a manager exists");
            expect(PageKiteAPI.addKite("http", "java.example.com", 0, "s3cret",
                                       "localhost", 8080) == 0, "addKite before start");
            expect(PageKiteAPI.setLogMask(PageKiteAPI.PK_LOG_NORMAL) == 0, "setLogMask");
            int status = PageKiteAPI.getStatus();
            expect(isStatus(status), "getStatus returned " + status);
            String log = PageKiteAPI.getLog();
            expect(log != null, "getLog returned null");
        } finally {
            expect(PageKiteAPI.free() == 0, "free");
        }
        // free() released the process-wide manager: init works again.
        expect(PageKiteAPI.init("javatest", 1, 1, 4, null, flags, 0), "init after free");
        expect(PageKiteAPI.free() == 0, "free again");
    }

    // A later check flies a kite through a relay (pagekiter or pagekite.py on
    // loopback): init(PK_AS_FRONTEND_RELAY) is process-wide, so it will run in
    // a second JVM started from here, or as its own ctest entry.

    public static void main(String[] args) {
        check("constants", PageKiteAPITest::constants);
        check("versionMatches", PageKiteAPITest::versionMatches);
        check("callsWithoutManagerFail", PageKiteAPITest::callsWithoutManagerFail);
        check("lifecycle", PageKiteAPITest::lifecycle);
        System.out.println(passed + " passed, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
