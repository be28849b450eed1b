#!/usr/bin/python3
"""bot_sigstub.py - a stand-in for tsunagu-signal speaking exactly the
DESIGN.md protocol (join/joined with iceServers carrying TURN REST
credentials, peer-joined/peer-left, signal to one peer, broadcast, ping/pong, resume of
a dropped member's place within --resume-seconds with messages queued
meanwhile), in-memory rooms, nothing else. The bot's integration tests use it until
tsunagu-signal lands; the test scripts take the signaling command as a
parameter, so switching to the real server is one argument.

usage: bot_sigstub.py --listen 127.0.0.1:0 --port-file F [--turn-url URL]...
                      [--turn-secret S] [--turn-ttl S]
Also serves the static files of --www DIR over plain HTTP GET on the same
port (for the browser test's page)."""
import argparse, asyncio, base64, hashlib, hmac, json, mimetypes, os, secrets, sys, time
import http

import websockets

rooms = {}    # room -> {id: ws, or a list of messages queued while detached}
tokens = {}   # resume token -> (room, id)


def ice_servers(args, peer_id):
    if not args.turn_url:
        return []
    user = "%d:%s" % (int(time.time()) + args.turn_ttl, peer_id)
    cred = base64.b64encode(hmac.new(args.turn_secret.encode(), user.encode(),
                                     hashlib.sha1).digest()).decode()
    return [{"urls": args.turn_url, "username": user, "credential": cred}]


async def send(ws, obj):
    if isinstance(ws, list):      # member detached, awaiting resume: queue
        ws.append(obj)
        return
    try:
        await ws.send(json.dumps(obj))
    except websockets.ConnectionClosed:
        pass


async def expire(room, pid, secs):
    """A detached member not resumed in time leaves for good."""
    await asyncio.sleep(secs)
    members = rooms.get(room, {})
    if isinstance(members.get(pid), list):
        del members[pid]
        for t, v in list(tokens.items()):
            if v == (room, pid):
                del tokens[t]
        for p in list(members.values()):
            await send(p, {"type": "peer-left", "id": pid})
        if not members:
            rooms.pop(room, None)


async def handler(ws, path=None):
    args = handler.args
    my_id, my_room, left = None, None, False
    try:
        async for text in ws:
            try:
                m = json.loads(text)
                t = m["type"]
            except Exception:
                await send(ws, {"type": "error", "code": "bad-request", "message": "bad JSON"})
                continue
            if t == "join" and my_id is None and isinstance(m.get("room"), str):
                my_room, my_id = m["room"], secrets.token_hex(8)
                members = rooms.setdefault(my_room, {})
                peers = [{"id": p, "name": ""} for p in members]
                token = secrets.token_hex(8)
                tokens[token] = (my_room, my_id)
                await send(ws, {"type": "joined", "room": my_room, "id": my_id, "peers": peers,
                                "iceServers": ice_servers(args, my_id), "resume": token})
                for p in list(members.values()):
                    await send(p, {"type": "peer-joined",
                                   "peer": {"id": my_id, "name": m.get("name", "")}})
                members[my_id] = ws
            elif t == "signal" and my_id:
                to = rooms.get(my_room, {}).get(m.get("to"))
                if to is None:
                    await send(ws, {"type": "error", "code": "unknown-peer", "message": "no such peer"})
                else:
                    await send(to, {"type": "signal", "from": my_id, "data": m.get("data")})
            elif t == "broadcast" and my_id:
                for pid, p in list(rooms.get(my_room, {}).items()):
                    if pid != my_id:
                        await send(p, {"type": "broadcast", "from": my_id, "data": m.get("data")})
            elif t == "resume" and my_id is None and m.get("token") in tokens:
                my_room, my_id = tokens[m["token"]]
                members = rooms.get(my_room, {})
                queued = members.get(my_id)
                if not isinstance(queued, list):
                    my_id = None
                    await send(ws, {"type": "error", "code": "unauthorized", "message": "not resumable"})
                    continue
                members[my_id] = ws
                await send(ws, {"type": "resumed", "id": my_id,
                                "peers": [{"id": p, "name": ""} for p in members if p != my_id]})
                for q in queued:
                    await send(ws, q)
            elif t == "resume":
                await send(ws, {"type": "error", "code": "unauthorized", "message": "unknown resume token"})
            elif t == "ping":
                await send(ws, {"type": "pong"})
            elif t == "leave":
                left = True
                break
            else:
                await send(ws, {"type": "error", "code": "not-joined" if not my_id else "bad-request",
                                "message": "unexpected " + str(t)})
    except websockets.ConnectionClosed:
        pass
    finally:
        if my_id and rooms.get(my_room, {}).get(my_id) is ws:
            if left:
                members = rooms[my_room]
                del members[my_id]
                for p in list(members.values()):
                    await send(p, {"type": "peer-left", "id": my_id})
                if not members:
                    rooms.pop(my_room, None)
            else:
                # Dropped without "leave": keep the place for resume.
                rooms[my_room][my_id] = []
                asyncio.ensure_future(expire(my_room, my_id, args.resume_seconds))


async def http_files(path, headers):
    """Plain GET of files under --www (the e2e page); /ws falls through."""
    www = handler.args.www
    if path.startswith("/ws") or not www:
        return None
    rel = path.split("?")[0].lstrip("/") or "index.html"
    full = os.path.realpath(os.path.join(www, rel))
    if not full.startswith(os.path.realpath(www)) or not os.path.isfile(full):
        return http.HTTPStatus.NOT_FOUND, [], b"not found\n"
    with open(full, "rb") as f:
        body = f.read()
    ctype = mimetypes.guess_type(full)[0] or "application/octet-stream"
    return http.HTTPStatus.OK, [("Content-Type", ctype)], body


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--turn-url", action="append", default=[])
    ap.add_argument("--turn-secret", default="")
    ap.add_argument("--turn-ttl", type=int, default=86400)
    ap.add_argument("--www", default="")
    ap.add_argument("--resume-seconds", type=float, default=30)
    args = ap.parse_args()
    handler.args = args
    host, port = args.listen.rsplit(":", 1)
    async with websockets.serve(handler, host, int(port), process_request=http_files,
                                max_size=1 << 20) as server:
        real = server.sockets[0].getsockname()[1]
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % real)
        os.rename(tmp, args.port_file)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
