// NativeLoaderTest - where net.pagekite.lib.NativeLoader loads libpagekite_jni
// from (ctest java_loader_*; bindings/README.md "Loading the native library").
//
//   java [-D...] -cp JARS NativeLoaderTest loaded WHERE
//       the binding works (the library's version is the binding's) and the
//       system property net.pagekite.lib.jni.loaded is WHERE
//   java [-D...] -cp JARS NativeLoaderTest missing TEXT
//       the first use of the binding fails with an UnsatisfiedLinkError whose
//       message contains TEXT, and a second use fails again (no crash)
// Exit status 0 when so; the reason otherwise.

import net.pagekite.lib.PageKiteAPI;

public final class NativeLoaderTest {
    private static void fail(String what) {
        System.out.println("FAIL " + what);
        System.exit(1);
    }

    public static void main(String[] args) {
        if (args.length != 2) {
            fail("usage: NativeLoaderTest loaded WHERE | missing TEXT");
        }
        if (args[0].equals("loaded")) {
            int v = PageKiteAPI.versionNumber();
            if (v != PageKiteAPI.PK_VERSION_NUMBER) {
                fail("versionNumber() " + v + " != PK_VERSION_NUMBER " + PageKiteAPI.PK_VERSION_NUMBER);
            }
            String where = System.getProperty("net.pagekite.lib.jni.loaded");
            if (!args[1].equals(where)) {
                fail("loaded from " + where + ", expected " + args[1]);
            }
            System.out.println("ok loaded from " + where + " (" + PageKiteAPI.PK_VERSION + ")");
        } else if (args[0].equals("missing")) {
            try {
                PageKiteAPI.versionNumber();
                fail("the binding loaded: " + System.getProperty("net.pagekite.lib.jni.loaded"));
            } catch (UnsatisfiedLinkError e) {
                if (e.getMessage() == null || !e.getMessage().contains(args[1])) {
                    fail("the error does not say \"" + args[1] + "\": " + e);
                }
                System.out.println("ok " + e.getMessage());
            }
            try {
                PageKiteAPI.versionNumber();
                fail("the binding loaded on the second try");
            } catch (LinkageError e) {
                System.out.println("ok second use: " + e.getClass().getSimpleName());
            }
        } else {
            fail("unknown mode " + args[0]);
        }
    }
}
