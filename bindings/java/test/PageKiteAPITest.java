// PageKiteAPITest - plain-main test of the SWIG Java binding (no JUnit needed).
//
// Run (what ctest does: the self-contained jar, bindings/README.md):
//   java -cp pagekite-VERSION-linux-x86_64.jar:pagekite-test.jar PageKiteAPITest [PAGEKITER]
// Each check prints "ok"/"FAIL"; the last line is "N passed, N failed" and the
// exit status is non-zero if anything failed.

import java.nio.file.Files;
import java.nio.file.Path;
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
        expect(PageKiteAPI.PK_KITE_STATUS_WAITING == 0, "PK_KITE_STATUS_WAITING");
        expect(PageKiteAPI.PK_KITE_STATUS_FLYING == 1, "PK_KITE_STATUS_FLYING");
        expect(PageKiteAPI.PK_KITE_STATUS_REJECTED == 2, "PK_KITE_STATUS_REJECTED");
        expect(PageKiteAPI.PK_KITE_STATUS_DUPLICATE == 3, "PK_KITE_STATUS_DUPLICATE");
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
        // Typed errors: the code of that failure (Java returns, as the reference).
        expect(PageKiteAPI.lastErrorCode() == PageKiteAPI.PK_EINVAL,
               "lastErrorCode after a NULL-manager failure: " + PageKiteAPI.lastErrorCode());
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
            // Kite states before start: waiting, no reason; unknown kites fail.
            // (The library's behaviour: not checked over the spec's stub.)
            if (realLibrary) {
            expect(PageKiteAPI.getKiteStatus("http", "java.example.com")
                   == PageKiteAPI.PK_KITE_STATUS_WAITING, "getKiteStatus before start");
            expect("".equals(PageKiteAPI.getKiteReason("http", "java.example.com")),
                   "getKiteReason before start");
            expect(PageKiteAPI.getKiteStatus("http", "nobody.example.com") == -1,
                   "getKiteStatus of an unknown kite");
            expect(PageKiteAPI.getKiteReason("http", "nobody.example.com") == null,
                   "getKiteReason of an unknown kite");
            expect(PageKiteAPI.lastError().contains("no kite"), "lastError: " + PageKiteAPI.lastError());
            expect(PageKiteAPI.addFrontendCertname("relay.example.com") == 0, "addFrontendCertname");
            expect(PageKiteAPI.addFrontendCertname("") == 0, "addFrontendCertname(\"\") clears");
            expect(PageKiteAPI.addFrontendCertname("not a name") == -1,
                   "addFrontendCertname with a bad name");
            }
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

    // ---- TLS by default, kite states and reasons, certificate names (pagekiter) ----

    /** A pagekiter child on 127.0.0.1:port for http kites under *.java.test. */
    static Process startRelay(String pagekiter, int port, Path cert, Path key) throws Exception {
        List<String> argv = new ArrayList<>(List.of(pagekiter, "--listen=127.0.0.1",
            "--ports=" + port, "--domain=http:*.java.test:javasecret", "-q"));
        if (cert != null) {
            argv.add("--tls-cert=" + cert);
            argv.add("--tls-key=" + key);
        }
        Process p = new ProcessBuilder(argv).redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        long deadline = System.currentTimeMillis() + 10000;
        while (System.currentTimeMillis() < deadline) {
            try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
                return p;
            } catch (java.io.IOException e) {
                if (!p.isAlive()) break;
                Thread.sleep(50);
            }
        }
        p.destroy();
        throw new AssertionError("pagekiter not listening on " + port);
    }

    static void stopRelay(Process relay) throws InterruptedException {
        relay.destroy();
        relay.waitFor();
    }

    /**
     * Wait (polling, as a Java caller does) until the status is want; give up at
     * once on PK_STATUS_REJECTED (a relay refused kites: waiting does not help)
     * or after ms.  Returns the last status seen.
     */
    static int waitForStatus(int want, long ms) {
        long deadline = System.currentTimeMillis() + ms;
        int s = PageKiteAPI.getStatus();
        while (s != want && s != PageKiteAPI.PK_STATUS_REJECTED
               && System.currentTimeMillis() < deadline) {
            PageKiteAPI.poll(1); // wakes on any change since getStatus()
            s = PageKiteAPI.getStatus();
        }
        return s;
    }

    static boolean logHas(String text, long ms) throws InterruptedException {
        long deadline = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < deadline) {
            String log = PageKiteAPI.getLog();
            if (log != null && log.contains(text)) return true;
            PageKiteAPI.poll(1);
        }
        return false;
    }

    static void openssl(Path dir, String... args) throws Exception {
        List<String> argv = new ArrayList<>();
        argv.add("openssl");
        argv.addAll(List.of(args));
        Process p = new ProcessBuilder(argv).directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), "UTF-8");
        expect(p.waitFor() == 0, "openssl " + String.join(" ", args) + ": " + out);
    }

    /** A throwaway CA (ca.pem) and relay certificates both.pem (relay.example.test +
     *  127.0.0.1) and named.pem (relay.example.test only), with their keys. */
    static Path makePki() throws Exception {
        Path dir = Files.createTempDirectory("pk-java-pki-");
        String[] ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};
        List<String> ca = new ArrayList<>(List.of("req", "-x509"));
        ca.addAll(List.of(ec));
        ca.addAll(List.of("-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
            "-subj", "/CN=pagekite Java binding test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"));
        openssl(dir, ca.toArray(new String[0]));
        String[][] certs = {{"both", "DNS:relay.example.test,IP:127.0.0.1"},
                            {"named", "DNS:relay.example.test"}};
        for (String[] c : certs) {
            List<String> req = new ArrayList<>(List.of("req"));
            req.addAll(List.of(ec));
            req.addAll(List.of("-keyout", c[0] + ".key", "-out", c[0] + ".csr",
                "-subj", "/CN=relay.example.test"));
            openssl(dir, req.toArray(new String[0]));
            Files.writeString(dir.resolve(c[0] + ".ext"), "subjectAltName=" + c[1]
                + "\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                + "extendedKeyUsage=serverAuth\n");
            openssl(dir, "x509", "-req", "-in", c[0] + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", c[0] + ".pem", "-days", "3", "-extfile", c[0] + ".ext");
        }
        return dir;
    }

    static void removeTree(Path dir) throws java.io.IOException {
        try (java.util.stream.Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    /** Connector for one kite through 127.0.0.1:port; returns with the thread started. */
    static void startConnector(int flags, String name, String secret, int port, String caFile,
                               String certname) {
        expect(PageKiteAPI.init("javakites", 2, 2, 16, null, flags, 0), "init: " + PageKiteAPI.lastError());
        try {
            expect(PageKiteAPI.addKite("http", name, 0, secret, "127.0.0.1", 9) == 0, "addKite");
            expect(PageKiteAPI.addFrontend("127.0.0.1", port) == 1, "addFrontend");
            if (caFile != null) {
                expect(PageKiteAPI.setTlsVerify(PageKiteAPI.PK_TLS_VERIFY_PEER, caFile) == 0,
                       "setTlsVerify");
            }
            if (certname != null) {
                expect(PageKiteAPI.addFrontendCertname(certname) == 0, "addFrontendCertname");
            }
            expect(PageKiteAPI.threadStart() == 0, "threadStart: " + PageKiteAPI.lastError());
        } catch (RuntimeException | Error e) {
            PageKiteAPI.free();
            throw e;
        }
    }

    static void stopConnector() {
        PageKiteAPI.threadStop();
        expect(PageKiteAPI.free() == 0, "free");
    }

    static final int PLAIN = PageKiteAPI.PK_WITH_IPV4 | PageKiteAPI.PK_WITH_IPV6; // no PK_WITH_SSL

    static void kiteRejected(String pagekiter, String name, String secret, String why)
            throws Exception {
        int port = freePort();
        Process relay = startRelay(pagekiter, port, null, null);
        try {
            startConnector(PLAIN, name, secret, port, null, null);
            try {
                long t0 = System.currentTimeMillis();
                int s = waitForStatus(PageKiteAPI.PK_STATUS_FLYING, 30000);
                long took = System.currentTimeMillis() - t0;
                expect(s == PageKiteAPI.PK_STATUS_REJECTED, "status " + s + ", log:\n" + PageKiteAPI.getLog());
                expect(took < 2000, "the wait took " + took + " ms"); // not its 30 s
                expect(PageKiteAPI.getKiteStatus("http", name) == PageKiteAPI.PK_KITE_STATUS_REJECTED,
                       "getKiteStatus " + PageKiteAPI.getKiteStatus("http", name));
                String reason = PageKiteAPI.getKiteReason("http", name);
                expect(why.equals(reason), "getKiteReason: " + reason);
            } finally {
                stopConnector();
            }
        } finally {
            stopRelay(relay);
        }
    }

    static void tlsByDefault(String pagekiter, Path pki) throws Exception {
        int port = freePort();
        Process relay = startRelay(pagekiter, port, pki.resolve("both.pem"), pki.resolve("both.key"));
        try {
            startConnector(PageKiteAPI.PK_WITH_DEFAULTS | PageKiteAPI.PK_WITHOUT_SERVICE_FRONTENDS,
                           "tls.java.test", "javasecret", port, pki.resolve("ca.pem").toString(), null);
            try {
                int s = waitForStatus(PageKiteAPI.PK_STATUS_FLYING, 15000);
                expect(s == PageKiteAPI.PK_STATUS_FLYING, "status " + s + ", log:\n" + PageKiteAPI.getLog());
                expect(PageKiteAPI.getLog().contains("with TLS"), "log:\n" + PageKiteAPI.getLog());
                expect(PageKiteAPI.getKiteStatus("http", "tls.java.test") == PageKiteAPI.PK_KITE_STATUS_FLYING,
                       "getKiteStatus");
            } finally {
                stopConnector();
            }
            // The same defaults, the test CA not trusted: verification fails.
            startConnector(PageKiteAPI.PK_WITH_DEFAULTS, "untrusted.java.test", "javasecret", port,
                           null, null);
            try {
                expect(logHas("certificate verify failed", 10000), "log:\n" + PageKiteAPI.getLog());
                expect(PageKiteAPI.getStatus() != PageKiteAPI.PK_STATUS_FLYING, "flew untrusted");
            } finally {
                stopConnector();
            }
        } finally {
            stopRelay(relay);
        }
        // The defaults against a plain relay: no TLS there.
        port = freePort();
        relay = startRelay(pagekiter, port, null, null);
        try {
            startConnector(PageKiteAPI.PK_WITH_DEFAULTS, "noplain.java.test", "javasecret", port,
                           null, null);
            try {
                expect(logHas("the relay does not speak TLS", 10000), "log:\n" + PageKiteAPI.getLog());
            } finally {
                stopConnector();
            }
        } finally {
            stopRelay(relay);
        }
    }

    static void frontendCertname(String pagekiter, Path pki) throws Exception {
        int port = freePort();
        Process relay = startRelay(pagekiter, port, pki.resolve("named.pem"), pki.resolve("named.key"));
        String ca = pki.resolve("ca.pem").toString();
        try {
            startConnector(PageKiteAPI.PK_WITH_DEFAULTS, "certname.java.test", "javasecret", port, ca,
                           null);
            try {
                expect(logHas("the relay's certificate is for relay.example.test; expected one of: 127.0.0.1",
                              10000), "log:\n" + PageKiteAPI.getLog());
                expect(PageKiteAPI.getStatus() != PageKiteAPI.PK_STATUS_FLYING, "flew without certname");
            } finally {
                stopConnector();
            }
            startConnector(PageKiteAPI.PK_WITH_DEFAULTS, "certname.java.test", "javasecret", port, ca,
                           "relay.example.test");
            try {
                int s = waitForStatus(PageKiteAPI.PK_STATUS_FLYING, 15000);
                expect(s == PageKiteAPI.PK_STATUS_FLYING, "status " + s + ", log:\n" + PageKiteAPI.getLog());
            } finally {
                stopConnector();
            }
        } finally {
            stopRelay(relay);
        }
    }

    /* Run against the real library (with a pagekiter to fly through), not
     * the spec's stub: the library's behaviour is checked too. */
    static boolean realLibrary;

    public static void main(String[] args) {
        realLibrary = args.length > 0;
        if (args.length > 0) {
            final String pagekiter = args[0];
            check("flyThroughRelay", () -> flyThroughRelay(pagekiter));
            check("wrongSecretIsRejectedWithSignature",
                  () -> kiteRejected(pagekiter, "wrong.java.test", "not-the-secret", "signature"));
            check("unknownNameIsRejectedWithUnknown",
                  () -> kiteRejected(pagekiter, "kite.elsewhere.test", "javasecret", "unknown"));
            Path pki = null;
            try {
                pki = makePki();
            } catch (Exception e) {
                failures.add("makePki");
                System.out.println("FAIL makePki: " + e);
            }
            if (pki != null) {
                final Path dir = pki;
                check("tlsByDefault", () -> tlsByDefault(pagekiter, dir));
                check("frontendCertname", () -> frontendCertname(pagekiter, dir));
                try {
                    removeTree(pki);
                } catch (java.io.IOException e) {
                    System.out.println("note: could not remove " + pki + ": " + e);
                }
            }
        }
        check("constants", PageKiteAPITest::constants);
        check("versionMatches", PageKiteAPITest::versionMatches);
        check("callsWithoutManagerFail", PageKiteAPITest::callsWithoutManagerFail);
        check("lifecycle", PageKiteAPITest::lifecycle);
        System.out.println(passed + " passed, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
