/*
 * A name server that takes its time, for t/214: getaddrinfo() of the host
 * name "kmd-peer.test" answers 127.0.0.2 (where no server listens), then
 * 127.0.0.1, after KMD_TEST_DNS_DELAY_MS milliseconds (none when unset),
 * and not before the file KMD_TEST_DNS_GATE names exists (when not empty; the
 * file "<gate>.waiting" exists while a lookup waits for it).
 * "kmd-missing.test" does not resolve.  Preloaded into a server
 * (LD_PRELOAD); other names go to the real getaddrinfo().
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/tap/slow_getaddrinfo.c
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn) (const char *, const char *, const struct addrinfo *,
							   struct addrinfo **);

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
			struct addrinfo **res)
{
	getaddrinfo_fn real = (getaddrinfo_fn) dlsym(RTLD_NEXT, "getaddrinfo");

	if (node != NULL && strcmp(node, "kmd-missing.test") == 0)
		return EAI_NONAME;
	if (node != NULL && strcmp(node, "kmd-peer.test") == 0)
	{
		const char *delay = getenv("KMD_TEST_DNS_DELAY_MS");
		const char *gate = getenv("KMD_TEST_DNS_GATE");

		if (delay != NULL)
		{
			long		ms = atol(delay);
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

			while (nanosleep(&ts, &ts) != 0)
				;
		}
		if (gate != NULL && gate[0] != '\0' && access(gate, F_OK) != 0)
		{
			/* "<gate>.waiting" tells the test that a lookup waits */
			char		waiting[4096];
			FILE	   *f;

			snprintf(waiting, sizeof(waiting), "%s.waiting", gate);
			if ((f = fopen(waiting, "w")) != NULL)
				fclose(f);
			while (access(gate, F_OK) != 0)
			{
				struct timespec ts = {0, 10 * 1000000L};

				nanosleep(&ts, NULL);
			}
			unlink(waiting);
		}
		{
			struct addrinfo *first;
			struct addrinfo *second;
			int			rc = real("127.0.0.2", service, hints, &first);

			if (rc != 0)
				return rc;
			if ((rc = real("127.0.0.1", service, hints, &second)) != 0)
			{
				freeaddrinfo(first);
				return rc;
			}
			/* freeaddrinfo() frees the whole chain */
			for (*res = first; first->ai_next != NULL; first = first->ai_next)
				;
			first->ai_next = second;
			return 0;
		}
	}
	return real(node, service, hints, res);
}
