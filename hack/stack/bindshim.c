/*
 * Dev/test node agent bind shim (LD_PRELOAD). NOT PART OF THE PRODUCT.
 *
 * Pods on the dev stack share the host's network namespace; each gets its own
 * loopback IP (FAISS_POD_IP). Real charts bind 0.0.0.0, so two replicas of one
 * Deployment would collide on the same port. This shim rewrites a bind() to the
 * IPv4 wildcard (and to the IPv6 wildcard on dual-stack sockets) into a bind to the
 * pod's own IP, so unchanged pod specs behave as they do with per-pod network
 * namespaces. Every other bind() is passed through untouched.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind)
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *ip = getenv("FAISS_POD_IP");
    if (ip && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in copy = *(const struct sockaddr_in *)addr;
        if (copy.sin_addr.s_addr == htonl(INADDR_ANY) &&
            inet_pton(AF_INET, ip, &copy.sin_addr) == 1)
            return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
    }
    if (ip && addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 copy = *(const struct sockaddr_in6 *)addr;
        int v6only = 0;
        socklen_t optlen = sizeof v6only;
        char mapped[64];
        if (IN6_IS_ADDR_UNSPECIFIED(&copy.sin6_addr) &&
            getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen) == 0 && !v6only &&
            snprintf(mapped, sizeof mapped, "::ffff:%s", ip) < (int)sizeof mapped &&
            inet_pton(AF_INET6, mapped, &copy.sin6_addr) == 1)
            return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
    }
    return real_bind(fd, addr, len);
}
