#ifndef STARLING_CPROTOBUFC_SHIM_H
#define STARLING_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
