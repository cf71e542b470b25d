// A Node.js subscriber of the rtgenre feed: one JSON object per line on stdout.
//
//   node subscribe.mjs [ENDPOINT] [STREAM]      (default tcp://127.0.0.1:5556, every stream)
//
// Each ZeroMQ frame is "genre.<stream> <json>"; the JSON fields are described by rtgenre's
// feed.schema.json (`rtgenre schema`). It exits after the first end-of-stream message.
import { Subscriber } from "zeromq";

const endpoint = process.argv[2] ?? "tcp://127.0.0.1:5556";
const stream = process.argv[3];

const sock = new Subscriber();
sock.connect(endpoint);
sock.subscribe(stream ? `genre.${stream} ` : "genre.");

for await (const [frame] of sock) {
  const text = frame.toString("utf8");
  const space = text.indexOf(" ");
  const msg = JSON.parse(text.slice(space + 1));
  process.stdout.write(JSON.stringify(msg) + "\n");
  if (msg.type === "eos") break;
}
sock.close();
