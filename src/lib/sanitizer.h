/* sanitizer.h — RG_SANITIZER: defined in a build with AddressSanitizer or
 * UndefinedBehaviorSanitizer (gcc says so by __SANITIZE_ADDRESS__, clang by
 * __has_feature). Such a build has no seccomp filter (sandbox.c) and passes
 * its sanitizer options on to workers (master.c). */
#ifndef RG_LIB_SANITIZER_H
#define RG_LIB_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define RG_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define RG_SANITIZER 1
#endif
#endif

#endif
