#!/bin/sh
# mkcerts.sh OUTDIR: throwaway TLS material for the C and Python tests, made
# with the `openssl` command. Idempotent: a complete OUTDIR (stamp file
# .mkcerts-v1) is left alone; anything else is rebuilt from scratch. Takes
# well under 5 s (one RSA key; everything else is EC P-256).
#
# Every server certificate below names localhost, 127.0.0.1 and ::1 in its
# subjectAltName unless said otherwise. "Signed by the CA" means ca.crt.
#
#   ca.crt ca.key               the trusted test root CA (EC)
#   inter.crt inter.key         an intermediate CA signed by the CA
#   server-rsa.crt              RSA 2048 server certificate, signed by the CA
#   server-rsa.key              its key, PKCS#8 (BEGIN PRIVATE KEY)
#   server-rsa.pkcs1.key        the same key, PKCS#1 (BEGIN RSA PRIVATE KEY)
#   server-rsa.enc.key          the same key, encrypted PKCS#8, passphrase "secret"
#   server-ec.crt               EC P-256 server certificate, signed by the CA
#   server-ec.key               its key, PKCS#8
#   server-ec.sec1.key          the same key, SEC1 (BEGIN EC PRIVATE KEY)
#   server-ec.enc.key           the same key, encrypted PKCS#8, passphrase "secret"
#   chain.crt chain.key         leaf signed by the intermediate, followed by the
#                               intermediate (one PEM: leaf first); verifies
#                               against ca.crt only with the intermediate sent
#   alt.crt alt.key             signed by the CA for "alt.example" only (SNI tests)
#   wrong.crt wrong.key         signed by the CA for "wrong.example" only
#   client.crt client.key       client certificate (CN=test-client,
#                               extendedKeyUsage clientAuth), signed by the CA
#   expired.crt expired.key     signed by the CA, valid 2000-01-01..2001-01-01
#   self.crt self.key           self-signed (its own issuer), localhost SANs
#   other-ca.crt other-ca.key   a second CA that nobody trusts
#   untrusted.crt untrusted.key signed by other-ca, localhost SANs
#   other-client.crt .key       client certificate signed by other-ca
#
# The passphrase of the encrypted keys is "secret". Parallel calls for one
# OUTDIR are serialised with flock(1).
set -eu

out=${1:?usage: mkcerts.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp="$out/.mkcerts-v1"
[ -f "$stamp" ] && exit 0

# Tests running in parallel may call this for the same OUTDIR: one makes the
# material, the others wait for it (flock is util-linux; without it, best effort).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.lock"
  flock 9
  [ -f "$stamp" ] && exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/mkcerts.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"

SAN="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
ossl() { openssl "$@" 2>/dev/null; }

eckey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# ca NAME SUBJ [ISSUER]: a CA certificate, self-signed or signed by ISSUER.
mkca() {
  eckey "$1.key"
  if [ $# -lt 3 ]; then
    ossl req -x509 -new -key "$1.key" -subj "$2" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.crt"
  else
    ossl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$1.ext"
    ossl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$1.ext" -out "$1.crt"
  fi
}

# leaf NAME ISSUER SUBJ EXT [KEYFILE]: a certificate for NAME.key (made if absent).
leaf() {
  [ -f "$1.key" ] || eckey "$1.key"
  ossl req -new -key "$1.key" -subj "$3" -out "$1.csr"
  printf '%s\nbasicConstraints=CA:FALSE\n' "$4" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$1.ext" -out "$1.crt"
}

mkca ca "/CN=cymg test CA"
mkca inter "/CN=cymg test intermediate" ca
mkca other-ca "/CN=cymg untrusted CA"

SRV="$SAN
extendedKeyUsage=serverAuth"

ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server-rsa.key
leaf server-rsa ca "/CN=localhost" "$SRV"
ossl pkey -in server-rsa.key -traditional -out server-rsa.pkcs1.key
ossl pkcs8 -topk8 -in server-rsa.key -v2 aes-256-cbc -passout pass:secret -out server-rsa.enc.key

eckey server-ec.key
leaf server-ec ca "/CN=localhost" "$SRV"
ossl pkey -in server-ec.key -traditional -out server-ec.sec1.key
ossl pkcs8 -topk8 -in server-ec.key -v2 aes-256-cbc -passout pass:secret -out server-ec.enc.key

leaf chain-leaf inter "/CN=localhost" "$SRV"
cat chain-leaf.crt inter.crt >chain.crt
cp chain-leaf.key chain.key

leaf alt ca "/CN=alt.example" "subjectAltName=DNS:alt.example
extendedKeyUsage=serverAuth"
leaf wrong ca "/CN=wrong.example" "subjectAltName=DNS:wrong.example
extendedKeyUsage=serverAuth"
leaf client ca "/CN=test-client" "extendedKeyUsage=clientAuth"
leaf untrusted other-ca "/CN=localhost" "$SRV"
leaf other-client other-ca "/CN=other-client" "extendedKeyUsage=clientAuth"

# Self-signed, with the SANs a client would otherwise accept.
eckey self.key
ossl req -x509 -new -key self.key -subj "/CN=localhost" -days 825 -sha256 \
  -addext "$SAN" -out self.crt

# Expired: `openssl ca` is the one front end that takes explicit dates.
eckey expired.key
ossl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p db && : >db/index.txt && echo 01 >db/serial
cat >ca.cnf <<EOF
[ca]
default_ca = c
[c]
dir = $work/db
database = $work/db/index.txt
serial = $work/db/serial
new_certs_dir = $work/db
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = e
unique_subject = no
[p]
commonName = supplied
[e]
basicConstraints = CA:FALSE
$SAN
EOF
ossl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr \
  -startdate 20000101000000Z -enddate 20010101000000Z -notext -out expired.crt

for f in ca inter other-ca server-rsa server-ec chain alt wrong client expired self \
         untrusted other-client; do
  cp "$f.crt" "$out/$f.crt"
  cp "$f.key" "$out/$f.key"
done
for f in server-rsa.pkcs1.key server-rsa.enc.key server-ec.sec1.key server-ec.enc.key; do
  cp "$f" "$out/$f"
done
chmod 600 "$out"/*.key
: >"$stamp"
