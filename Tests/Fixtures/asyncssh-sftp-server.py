#!/usr/bin/env python3
"""An asyncssh SFTP server for the server matrix (ServerMatrixTests): 127.0.0.1 only, a free
port, public-key login with the test identity, SFTP on the whole file system (the tests use
absolute paths under their own temp dirs), no shell or exec. Prints its port on the first line
and runs until it is killed or the process it watches ends.

Usage: asyncssh-sftp-server.py HOST_KEY AUTHORIZED_KEYS WATCH_PID"""
import asyncio, os, sys

import asyncssh


async def main():
    host_key, authorized, watch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key],
                                   authorized_client_keys=authorized, sftp_factory=True,
                                   allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    for _ in range(86400 * 10):  # bounded: a day at most
        await asyncio.sleep(0.1)
        try:
            os.kill(watch, 0)
        except OSError:
            break
    server.close()


asyncio.run(main())
