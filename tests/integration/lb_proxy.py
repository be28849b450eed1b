#!/usr/bin/python3
"""lb_proxy.py - a tiny TCP load balancer for tests: a stand-in for the one in
front of a tsunagu-signal cluster (docs/operations.md "Rolling restart").
Listens on 127.0.0.1 (a free port) and sends each NEW connection to the first
backend whose GET /healthz answers 200 (a draining node answers 503), then
pipes bytes both ways until either side closes. Connections already made
stay where they are, as with a real balancer.

Use it from a test (runs on its own thread):
    with HealthProxy([port1, port2]) as lb: url = "ws://127.0.0.1:%d/ws" % lb.port
or standalone: lb_proxy.py --port-file F PORT1 PORT2 ..."""
import argparse
import asyncio
import os
import sys
import threading


class HealthProxy:
    def __init__(self, backends, health_timeout=0.5):
        self.backends = list(backends)
        self.health_timeout = health_timeout
        self.routed = []  # backend port of every connection, in order (for assertions)
        self.port = None
        self.loop = asyncio.new_event_loop()
        self.thread = None
        self.server = None

    # -- thread plumbing --
    def __enter__(self):
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10) or self.port is None:
            raise AssertionError("lb_proxy did not start")
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def stop(self):
        if self.thread and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    # -- balancing --
    async def _healthy(self, port):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                          self.health_timeout)
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            w.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            line = await asyncio.wait_for(r.readline(), self.health_timeout)
            return line.split()[1:2] == [b"200"]
        except (OSError, asyncio.TimeoutError, IndexError):
            return False
        finally:
            w.close()

    async def _pipe(self, r, w):
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                w.close()
            except Exception:  # noqa: BLE001 (the loop may be going away)
                pass

    async def _client(self, cr, cw):
        for port in self.backends:
            if await self._healthy(port):
                try:
                    sr, sw = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    continue
                self.routed.append(port)
                await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))
                return
        self.routed.append(None)
        cw.close()  # nobody healthy: the client retries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("backends", type=int, nargs="+")
    a = ap.parse_args()
    with HealthProxy(a.backends) as lb:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(lb.port))
        os.rename(tmp, a.port_file)
        try:
            lb.thread.join()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
