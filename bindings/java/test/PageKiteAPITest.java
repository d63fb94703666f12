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

    // ---- fly a kite through our relay (pagekiter, a child process) ----

    static int freePort() throws java.io.IOException {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1,
                java.net.InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        }
    }

    static void flyThroughRelay(String pagekiter) throws Exception {
        com.sun.net.httpserver.HttpServer origin = com.sun.net.httpserver.HttpServer.create(
            new java.net.InetSocketAddress("127.0.0.1", 0), 0);
        byte[] page = "hello from a Java-flown kite".getBytes("UTF-8");
        origin.createContext("/", ex -> {
            ex.sendResponseHeaders(200, page.length);
            ex.getResponseBody().write(page);
            ex.close();
        });
        origin.start();
        int relayPort = freePort();
        Process relay = new ProcessBuilder(pagekiter, "--listen=127.0.0.1",
            "--ports=" + relayPort, "--domain=http:*.java.test:javasecret", "-q")
            .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        int flags = PageKiteAPI.PK_WITH_IPV4 | PageKiteAPI.PK_WITHOUT_SERVICE_FRONTENDS;
        boolean inited = false;
        try {
            expect(PageKiteAPI.init("javafly", 2, 2, 16, null, flags, 0), "init");
            inited = true;
            expect(PageKiteAPI.addKite("http", "kite.java.test", 0, "javasecret", "127.0.0.1",
                                       origin.getAddress().getPort()) == 0, "addKite");
            long deadline = System.currentTimeMillis() + 10000;
            int added = -1;
            while (added < 1 && System.currentTimeMillis() < deadline) {
                added = PageKiteAPI.addFrontend("127.0.0.1", relayPort);
                if (added < 1) Thread.sleep(100);
            }
            expect(added == 1, "addFrontend resolved 127.0.0.1");
            expect(PageKiteAPI.threadStart() == 0, "threadStart");
            deadline = System.currentTimeMillis() + 15000;
            while (PageKiteAPI.getStatus() != PageKiteAPI.PK_STATUS_FLYING
                   && System.currentTimeMillis() < deadline) {
                PageKiteAPI.poll(1);
            }
            expect(PageKiteAPI.getStatus() == PageKiteAPI.PK_STATUS_FLYING,
                   "status FLYING, log:\n" + PageKiteAPI.getLog());
            String reply = "";
            deadline = System.currentTimeMillis() + 10000;
            while (!reply.contains("200 OK") && System.currentTimeMillis() < deadline) {
                try (java.net.Socket sock = new java.net.Socket("127.0.0.1", relayPort)) {
                    sock.setSoTimeout(5000);
                    sock.getOutputStream().write(("GET / HTTP/1.1\r\nHost: kite.java.test\r\n"
                        + "Connection: close\r\n\r\n").getBytes("UTF-8"));
                    reply = new String(sock.getInputStream().readAllBytes(), "UTF-8");
                } catch (java.io.IOException e) {
                    Thread.sleep(100);
                }
            }
            expect(reply.contains("200 OK") && reply.endsWith("hello from a Java-flown kite"),
                   "page through the relay: " + reply);
            expect(PageKiteAPI.threadStop() == 0, "threadStop");
        } finally {
            if (inited) expect(PageKiteAPI.free() == 0, "free");
            relay.destroy();
            relay.waitFor();
            origin.stop(0);
        }
    }

    public static void main(String[] args) {
        if (args.length > 0) {
            final String pagekiter = args[0];
            check("flyThroughRelay", () -> flyThroughRelay(pagekiter));
        }
        check("constants", PageKiteAPITest::constants);
        check("versionMatches", PageKiteAPITest::versionMatches);
        check("callsWithoutManagerFail", PageKiteAPITest::callsWithoutManagerFail);
        check("lifecycle", PageKiteAPITest::lifecycle);
        System.out.println(passed + " passed, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
