/*-------------------------------------------------------------------------
 *
 * swift_demangle.c
 *	  A do-nothing swift_demangle(), preloaded after the ASan runtime into
 *	  the servers of the sanitized suite (scripts/test.sh asan).
 *
 * Preloaded, the ASan runtime initialises at the first malloc, which comes
 * from libgpg-error's constructor inside bindtextdomain().  Its init looks
 * up swift_demangle with dlsym(); when that fails, dlerror() translates the
 * message through gettext, whose lock bindtextdomain() holds, and the lock
 * is left broken: Postgres then hangs in its own bindtextdomain().  With
 * the symbol found there is no error to translate.  Returning NULL means
 * "not a Swift name", which is always true here.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/asan/swift_demangle.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>
#include <stdint.h>

char	   *swift_demangle(const char *name, size_t name_len, char *out,
						   size_t *out_len, uint32_t flags);

char *
swift_demangle(const char *name, size_t name_len, char *out, size_t *out_len,
			   uint32_t flags)
{
	return NULL;
}
