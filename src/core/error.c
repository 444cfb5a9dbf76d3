/* The one table of error codes, turned into names, messages and HTTP statuses. */
#include "ddialab/error.h"

#include <errno.h>
#include <string.h>

const char *dl_strerror(int rv)
{
    switch (rv) {
#define X(suffix, value, name, status, message)                                                    \
    case value:                                                                                    \
        return message;
        DL_ERROR_TABLE(X)
#undef X
    case 0:
        return "success";
    default:
        return strerror(-rv);
    }
}

const char *dl_err_name(int rv)
{
    switch (rv) {
#define X(suffix, value, name, status, message)                                                    \
    case value:                                                                                    \
        return name;
        DL_ERROR_TABLE(X)
#undef X
    case 0:
        return "ok";
    case -ETIMEDOUT:
        return "timeout";
    case -ENOMEM:
        return "out_of_memory";
    case -ENOSPC:
        return "no_space";
    case -EINVAL:
        return "invalid";
    case -ENOENT:
        return "not_found";
    default:
        return "system_error";
    }
}

int dl_err_http_status(int rv)
{
    switch (rv) {
#define X(suffix, value, name, status, message)                                                    \
    case value:                                                                                    \
        return status;
        DL_ERROR_TABLE(X)
#undef X
    case 0:
        return 200;
    case -EINVAL:
        return 400;
    case -ENOENT:
        return 404;
    case -ETIMEDOUT:
    case -EAGAIN:
        return 503;
    default:
        return 500;
    }
}
