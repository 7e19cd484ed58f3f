// Tests-as-data runner for Java (see codetune/evaluation/datamode.py): copied into the sandbox as
// CodetuneData.java next to Main.java, whose main() makes one Solution and hands each test call to
// emit(). Each result is written as one line {"v": VALUE} to ct_outputs.jsonl, VALUE being JSON:
// null, booleans, numbers (integers as such, doubles/floats by their toString; NaN and infinities as
// {"f": "NaN"}), strings, characters as {"c": "x"}, lists, other collections and arrays as JSON arrays,
// sets as {"set": [...]}, maps as {"map": [[k, v], ...]}, Optional as {"opt": []} or {"opt": [v]};
// anything else as {"r": "its class"}, which the harness never counts as equal to anything.
import java.io.BufferedWriter;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.lang.reflect.Array;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

public final class CodetuneData {
    public interface Call {
        Object call() throws Exception;
    }

    private static final int MAX_DEPTH = 100;
    private final Writer out;

    public CodetuneData(String path) throws IOException {
        out = new BufferedWriter(new OutputStreamWriter(new FileOutputStream(path), StandardCharsets.UTF_8));
    }

    public void emit(Call c) throws Exception {
        Object v = c.call();
        StringBuilder sb = new StringBuilder("{\"v\":");
        write(sb, v, 0);
        sb.append("}\n");
        out.write(sb.toString());
        out.flush();
    }

    private static void tag(StringBuilder sb, String tag, String text) {
        sb.append("{\"").append(tag).append("\":");
        string(sb, text);
        sb.append('}');
    }

    static void write(StringBuilder sb, Object x, int depth) {
        if (depth > MAX_DEPTH) {
            tag(sb, "r", "nested too deeply");
        } else if (x == null) {
            sb.append("null");
        } else if (x instanceof Boolean) {
            sb.append(((Boolean) x).booleanValue() ? "true" : "false");
        } else if (x instanceof Integer || x instanceof Long || x instanceof Short || x instanceof Byte
                || x instanceof java.math.BigInteger) {
            sb.append(x.toString());
        } else if (x instanceof Double || x instanceof Float) {
            double d = ((Number) x).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                tag(sb, "f", Double.toString(d));
            } else {
                sb.append(x.toString());
            }
        } else if (x instanceof String) {
            string(sb, (String) x);
        } else if (x instanceof Character) {
            tag(sb, "c", x.toString());
        } else if (x instanceof Optional) {
            Optional<?> o = (Optional<?>) x;
            sb.append("{\"opt\":[");
            if (o.isPresent()) {
                write(sb, o.get(), depth + 1);
            }
            sb.append("]}");
        } else if (x instanceof Map) {
            sb.append("{\"map\":[");
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) x).entrySet()) {
                if (!first) sb.append(',');
                first = false;
                sb.append('[');
                write(sb, e.getKey(), depth + 1);
                sb.append(',');
                write(sb, e.getValue(), depth + 1);
                sb.append(']');
            }
            sb.append("]}");
        } else if (x instanceof Set) {
            sb.append("{\"set\":");
            items(sb, ((Collection<?>) x).toArray(), depth);
            sb.append('}');
        } else if (x instanceof Collection) {
            items(sb, ((Collection<?>) x).toArray(), depth);
        } else if (x.getClass().isArray()) {
            int n = Array.getLength(x);
            Object[] a = new Object[n];
            for (int i = 0; i < n; i++) a[i] = Array.get(x, i);
            items(sb, a, depth);
        } else {
            tag(sb, "r", x.getClass().getName());
        }
    }

    private static void items(StringBuilder sb, Object[] a, int depth) {
        sb.append('[');
        for (int i = 0; i < a.length; i++) {
            if (i > 0) sb.append(',');
            write(sb, a[i], depth + 1);
        }
        sb.append(']');
    }

    // A JSON string with every character outside printable ASCII escaped (the file stays ASCII).
    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (ch == '"' || ch == '\\') {
                sb.append('\\').append(ch);
            } else if (ch < 0x20 || ch > 0x7e) {
                sb.append(String.format("\\u%04x", (int) ch));
            } else {
                sb.append(ch);
            }
        }
        sb.append('"');
    }
}
