import io.siddhi.core.SiddhiAppRuntime;
import io.siddhi.core.SiddhiManager;
import io.siddhi.core.event.Event;
import io.siddhi.core.stream.input.InputHandler;
import io.siddhi.core.stream.output.StreamCallback;
import java.io.BufferedReader;
import java.io.FileReader;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Siddhi side of `python -m bench ab`: per device, every A followed by B within
 * 20 minutes, in event time (playback mode), over the CSV the bench generates
 * (device,etype,val,yyyy-MM-dd HH:mm:ss.SSS).  Compiled against the Siddhi 5.1 jars of
 * the PySiddhi wheel into the bench's cache folder; nothing of Siddhi is in this repository.
 * Prints one line: SIDDHI events=N matches=M setup_s=S process_s=P
 */
public class SiddhiAB {
    public static void main(String[] args) throws Exception {
        long t0 = System.nanoTime();
        String app = "@app:playback "
            + "define stream ev (device string, etype string, val int, ts long); "
            + "partition with (device of ev) begin "
            + "@info(name = 'ab') from every e1=ev[etype == 'A'] -> e2=ev[etype == 'B'] within 20 min "
            + "select e1.device as device, e1.ts as a_ts, e2.ts as b_ts, e1.val as a_val, e2.val as b_val "
            + "insert into out; end;";
        SiddhiManager manager = new SiddhiManager();
        SiddhiAppRuntime runtime = manager.createSiddhiAppRuntime(app);
        AtomicLong matches = new AtomicLong();
        runtime.addCallback("out", new StreamCallback() {
            @Override public void receive(Event[] events) { matches.addAndGet(events.length); }
        });
        InputHandler input = runtime.getInputHandler("ev");
        runtime.start();
        long t1 = System.nanoTime();
        long n = 0;
        try (BufferedReader in = new BufferedReader(new FileReader(args[0]), 1 << 20)) {
            String line;
            while ((line = in.readLine()) != null) {
                String[] f = line.split(",");
                long ms = LocalDateTime.parse(f[3].replace(' ', 'T'))
                    .toInstant(ZoneOffset.UTC).toEpochMilli();
                input.send(ms, new Object[]{f[0], f[1], Integer.parseInt(f[2]), ms});
                n++;
            }
        }
        long t2 = System.nanoTime();
        runtime.shutdown();
        manager.shutdown();
        System.out.printf("SIDDHI events=%d matches=%d setup_s=%.3f process_s=%.3f%n",
            n, matches.get(), (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }
}
