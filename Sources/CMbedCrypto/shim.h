// HMAC-SHA256 for the cluster handshake comes from mbedcrypto (already under libnng's TLS).
#ifndef STARLING_CMBEDCRYPTO_SHIM_H
#define STARLING_CMBEDCRYPTO_SHIM_H
#include <mbedtls/md.h>
#endif
