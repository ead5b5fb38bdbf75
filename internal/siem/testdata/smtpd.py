"""A real SMTP server for the siem tests: aiosmtpd (Debian's python3-aiosmtpd)
with optional STARTTLS and AUTH, storing every accepted message in a Maildir.
It prints the port it listens on, then serves until killed."""
import argparse
import asyncio
import ssl

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("--maildir", required=True)
ap.add_argument("--cert", help="certificate for STARTTLS (required when given)")
ap.add_argument("--key")
ap.add_argument("--user", help="require AUTH as this user")
ap.add_argument("--password")
args = ap.parse_args()


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == args.user.encode()
          and auth_data.password == args.password.encode())
    return AuthResult(success=ok, handled=False)


async def main():
    kw = {}
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        kw.update(tls_context=ctx, require_starttls=True)
    if args.user:
        kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    handler = Mailbox(args.maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **kw), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
