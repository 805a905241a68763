import io.siddhi.core.SiddhiAppRuntime;
import io.siddhi.core.SiddhiManager;
import io.siddhi.core.event.Event;
import io.siddhi.core.stream.input.InputHandler;
import io.siddhi.core.stream.output.StreamCallback;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.FileReader;
import java.io.FileWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Siddhi side of `python -m bench windowed`: per room, the mean of the readings of the
 * last 10 minutes, output at each reading whose room's mean is above 23, in event time
 * (playback mode), over the CSV the bench generates (room,value,yyyy-MM-dd HH:mm:ss.SSS).
 * Compiled against the Siddhi 5.1 jars of the PySiddhi wheel into the bench's cache folder;
 * nothing of Siddhi is in this repository.  With a second argument, writes each output as a
 * line `room,mean` to that file.  Prints one line (as SiddhiAB, "matches" being outputs):
 * SIDDHI events=N matches=M setup_s=S process_s=P
 */
public class SiddhiWindowed {
    public static void main(String[] args) throws Exception {
        long t0 = System.nanoTime();
        String app = "@app:playback "
            + "define stream Temp (room string, value double); "
            + "@info(name = 'warm') from Temp#window.time(10 min) "
            + "select room, avg(value) as mean group by room having mean > 23.0 "
            + "insert into Out;";
        SiddhiManager manager = new SiddhiManager();
        SiddhiAppRuntime runtime = manager.createSiddhiAppRuntime(app);
        AtomicLong outputs = new AtomicLong();
        BufferedWriter out = args.length > 1 ? new BufferedWriter(new FileWriter(args[1]), 1 << 20)
                                             : null;
        runtime.addCallback("Out", new StreamCallback() {
            @Override public void receive(Event[] events) {
                outputs.addAndGet(events.length);
                if (out == null) {
                    return;
                }
                try {
                    for (Event event : events) {
                        Object[] data = event.getData();
                        out.write(data[0] + "," + data[1] + "\n");
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        });
        InputHandler input = runtime.getInputHandler("Temp");
        runtime.start();
        long t1 = System.nanoTime();
        long n = 0;
        try (BufferedReader in = new BufferedReader(new FileReader(args[0]), 1 << 20)) {
            String line;
            while ((line = in.readLine()) != null) {
                String[] f = line.split(",");
                long ms = LocalDateTime.parse(f[2].replace(' ', 'T'))
                    .toInstant(ZoneOffset.UTC).toEpochMilli();
                input.send(ms, new Object[]{f[0], Double.parseDouble(f[1])});
                n++;
            }
        }
        long t2 = System.nanoTime();
        runtime.shutdown();
        manager.shutdown();
        if (out != null) {
            out.close();
        }
        System.out.printf("SIDDHI events=%d matches=%d setup_s=%.3f process_s=%.3f%n",
            n, outputs.get(), (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }
}
