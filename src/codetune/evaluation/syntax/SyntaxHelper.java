// Long-lived Java syntax checker for codetune (see java.py for the protocol and the wrapping rule).
//
// Reads one request per line on stdin:   LEVEL \t UNIT \t base64(utf-8 source)
//   LEVEL: parse | compile        UNIT: auto | whole | member
// Writes one reply per line on stdout:   STATUS \t LINE \t FORM \t base64(utf-8 message)
//   STATUS: valid | invalid | error    LINE: 1-based line in the snippet, or 0    FORM: whole | member
//
// One JVM serves thousands of snippets: the compiler, the file manager and the JDK's symbol tables stay
// loaded, which is what makes this much faster than one javac per snippet (see benchmarks/RESULTS.md).
import com.sun.source.tree.ClassTree;
import com.sun.source.tree.CompilationUnitTree;
import com.sun.source.tree.Tree;
import com.sun.source.util.JavacTask;
import com.sun.tools.javac.api.JavacTaskPool;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.StringWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import javax.lang.model.element.Modifier;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

public final class SyntaxHelper {
    // Same-line prefix: line numbers of the wrapped snippet equal those of the snippet itself.
    static final String MEMBER_SUFFIX = "\n}\n";
    // A member that starts `[annotations] [access] [<T>] Name(` is a constructor: the wrapper class must
    // carry its name, or javac rejects it as a method without a return type.
    static final java.util.regex.Pattern CONSTRUCTOR = java.util.regex.Pattern.compile(
        "\\s*(?:@[\\w.]+(?:\\([^)]*\\))?\\s+)*(?:(?:public|protected|private)\\s+)?(?:<[^>]*>\\s*)?"
        + "([A-Za-z_$][\\w$]*)\\s*\\(");

    static String memberClassName(String code) {
        String bare = code.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\n]*", " ");
        java.util.regex.Matcher m = CONSTRUCTOR.matcher(bare);
        return m.lookingAt() ? m.group(1) : "Main";
    }
    static final int MAX_MESSAGE = 600;
    static final List<String> OPTIONS = List.of("-proc:none", "-Xlint:none", "-nowarn", "-implicit:none");

    static JavaCompiler compiler;
    static StandardJavaFileManager fileManager;
    // javac's own pool of reusable compiler contexts (what JShell uses): the symbol tables of the JDK's
    // classes survive from one snippet to the next instead of being rebuilt for each one.
    // The classes a snippet declares are dropped from the context after each task.
    static JavacTaskPool pool;

    interface Work<Z> {
        Z run(JavacTask task) throws Exception;
    }

    static <Z> Z withTask(DiagnosticCollector<JavaFileObject> diags, JavaFileObject source, Work<Z> work)
            throws Exception {
        if (pool == null) {
            return work.run((JavacTask) compiler.getTask(
                    new StringWriter(), fileManager, diags, OPTIONS, null, List.of(source)));
        }
        Object[] result = new Object[1];
        Exception[] failure = new Exception[1];
        pool.getTask(new StringWriter(), fileManager, diags, OPTIONS, null, List.of(source), task -> {
            try {
                result[0] = work.run(task);
            } catch (Exception e) {
                failure[0] = e;
            }
            return null;
        });
        if (failure[0] != null) {
            throw failure[0];
        }
        @SuppressWarnings("unchecked")
        Z z = (Z) result[0];
        return z;
    }

    static final class Source extends SimpleJavaFileObject {
        final String code;

        Source(String name, String code) {
            super(URI.create("string:///" + name + ".java"), JavaFileObject.Kind.SOURCE);
            this.code = code;
        }

        @Override
        public CharSequence getCharContent(boolean ignoreEncodingErrors) {
            return code;
        }
    }

    /** Outcome of one parse or compile of one text. */
    static final class Outcome {
        boolean ok;
        long line;      // 1-based, 0 when unknown
        long position;  // character offset of the first error, for "which reading got further"
        String message = "";
        String publicType;  // name of the public top-level type, if any (javac wants it as the file name)
    }

    static Outcome firstError(DiagnosticCollector<JavaFileObject> diags, Outcome out) {
        for (Diagnostic<? extends JavaFileObject> d : diags.getDiagnostics()) {
            if (d.getKind() == Diagnostic.Kind.ERROR) {
                out.ok = false;
                out.line = Math.max(0, d.getLineNumber());
                out.position = d.getPosition() < 0 ? 0 : d.getPosition();
                String msg = d.getMessage(Locale.ROOT);
                out.message = msg.length() > MAX_MESSAGE ? msg.substring(0, MAX_MESSAGE) : msg;
                return out;
            }
        }
        out.ok = true;
        return out;
    }

    static Outcome parse(String code) throws Exception {
        DiagnosticCollector<JavaFileObject> diags = new DiagnosticCollector<>();
        return withTask(diags, new Source("Main", code), task -> {
            Outcome out = new Outcome();
            for (CompilationUnitTree unit : task.parse()) {
                for (Tree t : unit.getTypeDecls()) {
                    if (t instanceof ClassTree) {
                        ClassTree c = (ClassTree) t;
                        if (c.getModifiers().getFlags().contains(Modifier.PUBLIC)) {
                            out.publicType = c.getSimpleName().toString();
                            break;
                        }
                    }
                }
            }
            return firstError(diags, out);
        });
    }

    static Outcome compile(String code, String publicType) throws Exception {
        DiagnosticCollector<JavaFileObject> diags = new DiagnosticCollector<>();
        String name = publicType == null || publicType.isEmpty() ? "Main" : publicType;
        return withTask(diags, new Source(name, code), task -> {
            task.analyze();  // parse, enter, attribute, flow: every error javac reports, without writing classes
            return firstError(diags, new Outcome());
        });
    }

    /**
     * javac's command-line path, in this JVM, on a temporary file: the fallback when the API path crashes.
     * javac 17's analyze() can hit an internal assertion (Attr.visitYield on a switch expression over an
     * unresolved type) where command-line javac reports ordinary errors; this gives javac's own verdict.
     */
    static Outcome cliCheck(String code, String publicType, boolean compileLevel) throws Exception {
        String name = publicType == null || publicType.isEmpty() ? "Main" : publicType;
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("codetune-javac-");
        try {
            java.nio.file.Path file = dir.resolve(name + ".java");
            java.nio.file.Files.writeString(file, code, StandardCharsets.UTF_8);
            List<String> args = new ArrayList<>(OPTIONS);
            args.addAll(List.of("-encoding", "UTF-8", "-d", dir.resolve("classes").toString()));
            if (!compileLevel) {
                args.addAll(List.of("-XDshould-stop.ifError=PARSE", "-XDshould-stop.ifNoError=PARSE"));
            }
            args.add(file.toString());
            java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
            int rc = compiler.run(null, err, err, args.toArray(new String[0]));
            String text = err.toString(StandardCharsets.UTF_8);
            Outcome out = new Outcome();
            // "/tmp/.../Name.java:LINE: error: message"
            java.util.regex.Matcher m = java.util.regex.Pattern
                    .compile("(?m)^\\S*" + java.util.regex.Pattern.quote(name + ".java") + ":(\\d+): error: ([^\\n]*)")
                    .matcher(text);
            if (m.find()) {
                out.ok = false;
                out.line = Long.parseLong(m.group(1));
                out.message = m.group(2);
            } else if (rc == 0) {
                out.ok = true;
            } else {
                throw new IllegalStateException("javac exited " + rc + ": " + text);
            }
            return out;
        } finally {
            try (java.util.stream.Stream<java.nio.file.Path> walk = java.nio.file.Files.walk(dir)) {
                walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    static String reply(String status, long line, String form, String message) {
        String b64 = Base64.getEncoder().encodeToString(message.getBytes(StandardCharsets.UTF_8));
        return status + "\t" + line + "\t" + form + "\t" + b64;
    }

    static String check(String level, String unit, String code) throws Exception {
        boolean compileLevel = level.equals("compile");
        String className = memberClassName(code);
        String memberPrefix = "class " + className + " { ";
        String wrapped = memberPrefix + code + MEMBER_SUFFIX;
        Outcome whole = null;
        Outcome member = null;
        if (!unit.equals("member")) {
            whole = parse(code);
        }
        if (unit.equals("member") || (unit.equals("auto") && !whole.ok)) {
            member = parse(wrapped);
        }
        // The documented rule: the whole-unit reading if it parses, else the class-member reading if it
        // parses; if neither parses, the reading whose first error comes later (ties go to the whole unit).
        String form;
        Outcome chosen;
        if (member == null) {
            form = "whole";
            chosen = whole;
        } else if (whole == null || member.ok) {
            form = "member";
            chosen = member;
        } else {
            long memberPos = member.position - memberPrefix.length();
            boolean memberFurther = memberPos > whole.position;
            form = memberFurther ? "member" : "whole";
            chosen = memberFurther ? member : whole;
        }
        if (chosen.ok && compileLevel) {
            String text = form.equals("member") ? wrapped : code;
            String name = form.equals("member") ? className : chosen.publicType;
            try {
                chosen = compile(text, name);
            } catch (Exception | AssertionError e) {
                if (pool != null) {
                    pool = new JavacTaskPool(1);  // the crashed context may be left inconsistent: drop it
                }
                chosen = cliCheck(text, name, true);
            }
        }
        if (chosen.ok) {
            return reply("valid", 0, form, "");
        }
        return reply("invalid", chosen.line, form, chosen.message);
    }

    public static void main(String[] args) throws Exception {
        // javac prints nothing to System.out with our Writer, but keep the protocol stream private anyway.
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false, "UTF-8");
        System.setOut(System.err);
        compiler = ToolProvider.getSystemJavaCompiler();
        if (compiler == null) {
            out.println(reply("error", 0, "whole", "this Java runtime has no compiler (javax.tools); install a JDK, "
                    + "not a JRE: apt-get install openjdk-17-jdk-headless"));
            out.flush();
            return;
        }
        fileManager = compiler.getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8);
        if (!"false".equals(System.getProperty("codetune.pool"))) {
            pool = new JavacTaskPool(1);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        out.println(reply("ready", 0, "whole", System.getProperty("java.version")));
        out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t", 3);
            String result;
            try {
                String code = new String(Base64.getDecoder().decode(parts[2]), StandardCharsets.UTF_8);
                result = check(parts[0], parts[1], code);
            } catch (Throwable e) {
                // A compiler crash (StackOverflowError on a pathological nesting, ...) is "could not check".
                result = reply("error", 0, "whole", "javac crashed: " + e);
            }
            out.println(result);
            out.flush();
        }
    }
}
