#!/usr/bin/env python3
"""Writes jwt-vectors.h for test_jwt.c: key pairs made here (Python's
cryptography, not wolfSSL) and tokens signed with them, good and bad.
Run it again only to change the vectors; the output is committed.
The test verifies at NOW; good tokens expire at EXP."""
import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

NOW, EXP = 1700000000, 2000000000


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pem(pub):
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
p256 = ec.generate_private_key(ec.SECP256R1())
p384 = ec.generate_private_key(ec.SECP384R1())
ed = ed25519.Ed25519PrivateKey.generate()
SECRET = b"0123456789abcdef0123456789abcdef"


def sign(alg, signing_input, key=None):
    if alg.startswith("HS"):
        h = {"HS256": hashes.SHA256(), "HS384": hashes.SHA384(), "HS512": hashes.SHA512()}[alg]
        m = hmac.HMAC(key if key is not None else SECRET, h)
        m.update(signing_input)
        return m.finalize()
    if alg.startswith("RS"):
        h = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
        return (key or rsa_key).sign(signing_input, padding.PKCS1v15(), h)
    if alg == "ES256":
        r, s = decode_dss_signature(p256.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "ES384":
        r, s = decode_dss_signature(p384.sign(signing_input, ec.ECDSA(hashes.SHA384())))
        return r.to_bytes(48, "big") + s.to_bytes(48, "big")
    if alg == "EdDSA":
        return ed.sign(signing_input)
    raise ValueError(alg)


def claims(**over):
    c = {"sub": "alice", "email": "alice@example.org", "iss": "https://idp.example.org",
         "aud": ["mail", "other"], "iat": NOW - 60, "nbf": NOW - 60, "exp": EXP}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token(alg, payload=None, header=None, key=None, sig_alg=None, raw_payload=None):
    h = {"alg": alg, "typ": "JWT"} if header is None else header
    hp = b64u(json.dumps(h, separators=(",", ":")).encode())
    pl = raw_payload if raw_payload is not None else json.dumps(
        claims() if payload is None else payload, separators=(",", ":")).encode()
    si = (hp + "." + b64u(pl)).encode()
    return si.decode() + "." + b64u(sign(sig_alg or alg, si, key))


good = {a: token(a) for a in ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
                              "ES384", "EdDSA")}
t = good["RS256"].split(".")
flipped = t[0] + "." + t[1] + "." + ("B" if t[2][0] == "A" else "A") + t[2][1:]
other_payload = t[0] + "." + b64u(json.dumps(claims(sub="mallory")).encode()) + "." + t[2]
rsa_pub_pem = pem(rsa_key.public_key()).encode()
bad = [
    ("expired", token("RS256", claims(exp=NOW - 1)), "token expired"),
    ("nbf", token("RS256", claims(nbf=NOW + 3600)), "token not valid yet (nbf)"),
    ("iat", token("ES256", claims(iat=NOW + 3600)), "token issued in the future (iat)"),
    ("no_exp", token("EdDSA", claims(exp=None)), "token has no exp"),
    ("exp_string", token("EdDSA", claims(exp="2000000000")), "exp is not a number"),
    ("wrong_aud", token("RS256", claims(aud="web")), "audience not accepted"),
    ("wrong_iss", token("RS256", claims(iss="https://evil.example")), "issuer not accepted"),
    ("no_iss", token("RS256", claims(iss=None)), "token has no iss"),
    ("no_user", token("RS256", claims(sub=None)), "token has no string user claim (username_attribute)"),
    ("user_number", token("RS256", claims(sub=42)), "token has no string user claim (username_attribute)"),
    ("user_ctrl", token("RS256", claims(sub="al\u0001ice")), "user claim is empty or not printable text"),
    ("flipped_sig", flipped, "bad signature"),
    ("other_payload", other_payload, "bad signature"),
    ("wrong_key", token("RS256", key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
     "bad signature"),
    ("es256_short_sig", token("ES256").rsplit(".", 1)[0] + "." + b64u(b"\x01" * 63), "bad signature"),
    ("alg_none", b64u(b'{"alg":"none","typ":"JWT"}') + "." + b64u(json.dumps(claims()).encode()) + ".",
     "alg none refused"),
    ("alg_None", b64u(b'{"alg":"None"}') + "." + b64u(json.dumps(claims()).encode()) + ".",
     "alg none refused"),
    ("alg_missing", token("RS256", header={"typ": "JWT"}, sig_alg="RS256"), "header has no alg"),
    ("alg_unknown", token("PS256", header={"alg": "PS256"}, sig_alg="RS256"), "unsupported alg"),
    ("alg_number", token("RS256", header={"alg": 256}, sig_alg="RS256"), "unsupported alg"),
    # HS256 "signed" with the RSA public key's PEM as the HMAC secret
    ("key_confusion", token("HS256", key=rsa_pub_pem), "bad signature"),
    ("huge_kid", token("RS256", header={"alg": "RS256", "kid": "k" * 300}), "kid too long (or holds NUL)"),
    ("huge_header", token("RS256", header={"alg": "RS256", "kid": "k" * 4000}),
     "header is not base64url or too long"),
    ("kid_number", token("RS256", header={"alg": "RS256", "kid": 7}), "kid is not a string"),
    ("kid_unknown", token("RS256", header={"alg": "RS256", "kid": "nope"}), "no key for the token's azp/alg/kid"),
    ("crit", token("RS256", header={"alg": "RS256", "crit": ["exp"]}), "critical header extensions are not supported"),
    ("typ_bad", token("RS256", header={"alg": "RS256", "typ": "JOSE+JSON"}), "typ is not JWT"),
    ("deep_json", token("RS256", raw_payload=b'{"a":' + b"[" * 10000 + b"}"),
     "payload is not a JSON object"),
    ("dup_claim", token("RS256", raw_payload=b'{"sub":"alice","sub":"root","exp":2000000000}'),
     "payload is not a JSON object"),
    ("header_not_json", b64u(b"alg=RS256") + "." + t[1] + "." + t[2], "header is not a JSON object"),
    ("two_parts", t[0] + "." + t[1], "not a JWS compact serialization (three dot-separated parts)"),
    ("four_parts", good["RS256"] + ".x", "not a JWS compact serialization (three dot-separated parts)"),
    ("padded", t[0] + "=." + t[1] + "." + t[2], "malformed base64url in the token"),
    ("std_b64", t[0] + "." + t[1] + "." + t[2].replace("-", "+").replace("_", "/") + "+/",
     "malformed base64url in the token"),
    ("azp_empty", token("RS256", claims(azp="")), "azp is not a short text string"),
    ("azp_other", token("RS256", claims(azp="client2")), "no key for the token's azp/alg/kid"),
]


def c_str(s):
    out = '"'
    for ch in s:
        if ch in '"\\':
            out += "\\" + ch
        elif ch == "\n":
            out += '\\n"\n\t"'
        else:
            out += ch
    return out + '"'


o = sys.stdout
o.write("/* generated by jwt_vectors.py: keys made by Python's cryptography */\n")
o.write("#define JWT_NOW %d\n#define JWT_EXP %d\n" % (NOW, EXP))
o.write("static const char jwt_secret[] = %s;\n" % c_str(SECRET.decode()))
for name, k in (("rsa", rsa_key), ("rsa1024", rsa_small), ("p256", p256), ("p384", p384), ("ed25519", ed)):
    o.write("static const char pem_%s[] =\n\t%s;\n" % (name, c_str(pem(k.public_key()))))
o.write("static const char pem_rsa_private[] =\n\t%s;\n" % c_str(rsa_key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption()).decode()))
o.write("static const struct { const char *alg, *token; } jwt_good[] = {\n")
for a, tok in good.items():
    o.write("\t{ %s, %s },\n" % (c_str(a), c_str(tok)))
o.write("};\nstatic const struct { const char *name, *token, *error; } jwt_bad[] = {\n")
for n, tok, err in bad:
    o.write("\t{ %s, %s, %s },\n" % (c_str(n), c_str(tok), c_str(err)))
o.write("};\n")
