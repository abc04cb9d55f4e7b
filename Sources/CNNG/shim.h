// Every nng header Starling uses, in one place. Only StarlingWire imports this module.
#ifndef STARLING_CNNG_SHIM_H
#define STARLING_CNNG_SHIM_H
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/survey0/survey.h>
#include <nng/protocol/survey0/respond.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>
#endif
