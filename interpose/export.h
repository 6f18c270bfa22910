// Exporting an interposed entry point: the implementation is a hidden
// function (internal callers use it without a PLT hop), the public name an
// alias with default visibility.
#ifndef PLK_EXPORT_H
#define PLK_EXPORT_H

#define PLK_EXPORT_ALIAS(public_name, impl)                                   \
    extern __typeof__(impl) public_name                                       \
        __attribute__((alias(#impl), visibility("default")))

#define PLK_EXPORT __attribute__((visibility("default")))

#endif
