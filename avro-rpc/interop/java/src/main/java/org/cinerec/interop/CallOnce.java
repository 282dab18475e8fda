package org.cinerec.interop;

import java.io.File;
import java.net.InetSocketAddress;
import java.net.URL;

import org.apache.avro.AvroRemoteException;
import org.apache.avro.Protocol;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.ipc.HttpTransceiver;
import org.apache.avro.ipc.Transceiver;
import org.apache.avro.ipc.generic.GenericRequestor;
import org.apache.avro.ipc.netty.NettyTransceiver;

/**
 * One generic Avro RPC call from the Java reference implementation, for
 * proving that a cinerec service answers a non-Rust client:
 *
 * <pre>
 * CallOnce --proto FILE.avpr --transport netty|http --port N --message NAME --params JSON
 * </pre>
 *
 * The parameters are the message's request record in Avro's JSON encoding.
 * Prints {@code OK <response as JSON>} and exits 0, or
 * {@code ERROR <error as JSON>} and exits 3 for an error the server returned
 * (declared or system); exits 1 when the call cannot be made, 2 on bad usage.
 */
public final class CallOnce {
    private CallOnce() {}

    public static void main(String[] args) throws Exception {
        String proto = null, transport = "netty", host = "127.0.0.1", message = null, params = "{}";
        int port = -1;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--proto" -> proto = args[i + 1];
                case "--transport" -> transport = args[i + 1];
                case "--host" -> host = args[i + 1];
                case "--port" -> port = Integer.parseInt(args[i + 1]);
                case "--message" -> message = args[i + 1];
                case "--params" -> params = args[i + 1];
                default -> usage("unknown option " + args[i]);
            }
        }
        if (proto == null || message == null || port <= 0) {
            usage("--proto, --message and --port are required");
        }
        Protocol protocol = Protocol.parse(new File(proto));
        Protocol.Message msg = protocol.getMessages().get(message);
        if (msg == null) {
            usage("protocol " + protocol.getName() + " has no message " + message);
        }
        Schema request = msg.getRequest();
        Object record = new GenericDatumReader<>(request)
                .read(null, DecoderFactory.get().jsonDecoder(request, params));

        Transceiver transceiver = switch (transport) {
            case "netty" -> new NettyTransceiver(new InetSocketAddress(host, port), 5_000);
            case "http" -> new HttpTransceiver(new URL("http://" + host + ":" + port + "/"));
            default -> {
                usage("transport must be netty or http");
                yield null;
            }
        };
        int exit;
        try {
            Object response = new GenericRequestor(protocol, transceiver).request(message, record);
            System.out.println("OK " + GenericData.get().toString(response));
            exit = 0;
        } catch (AvroRemoteException e) {
            System.out.println("ERROR " + GenericData.get().toString(e.getValue()));
            exit = 3;
        } finally {
            transceiver.close();
        }
        System.exit(exit);
    }

    private static void usage(String why) {
        System.err.println("CallOnce: " + why);
        System.err.println("usage: CallOnce --proto FILE --transport netty|http --port N --message NAME --params JSON");
        System.exit(2);
    }
}
