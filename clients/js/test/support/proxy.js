// A TCP proxy on loopback that can cut every connection through it without a close frame
// (a reset, as when the network goes away), or refuse new ones for a while.
import net from "node:net";

export class CuttingProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.refusing = false;
    this.connections = 0;
    this.pairs = new Set();
  }

  async start() {
    this.server = net.createServer((client) => this.#accept(client));
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = this.server.address().port;
    return this;
  }

  url(scheme) {
    return `${scheme}://127.0.0.1:${this.port}`;
  }

  #accept(client) {
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    this.connections += 1;
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const pair = [client, upstream];
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const side of pair) {
      side.on("error", end);
      side.on("close", end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Reset every connection through the proxy, both ways. */
  cut() {
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.pairs.clear();
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
