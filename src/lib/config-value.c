/* config-value.c — Dovecot's value syntax (numbers, sizes, times,
 * booleans) for settings.c and every caller of config.h's value helpers. */
#include "lib/config.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

/* leading decimal digits of s into *value_r; returns the rest, NULL on
   no digits or overflow (*error_r set) */
static const char *parse_u64_prefix(const char *s, uint64_t *value_r, const char **error_r)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s)) {
		*error_r = "not a number";
		return NULL;
	}
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10) {
			*error_r = "number too large";
			return NULL;
		}
		v = v * 10 + d;
	}
	*value_r = v;
	return s;
}

int config_parse_uint(const char *str, unsigned *value_r, const char **error_r)
{
	uint64_t v;
	const char *end = parse_u64_prefix(str, &v, error_r);

	if (end == NULL)
		return -1;
	if (*end != '\0') {
		*error_r = "not a number";
		return -1;
	}
	if (v > UINT_MAX) {
		*error_r = "number too large";
		return -1;
	}
	*value_r = (unsigned)v;
	return 0;
}

int config_parse_size(const char *str, uint64_t *bytes_r, const char **error_r)
{
	uint64_t v, mult = 1;
	const char *s = parse_u64_prefix(str, &v, error_r);

	if (s == NULL)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	switch (toupper((unsigned char)*s)) {
	case '\0':
		break;
	case 'B':
		s++;
		break;
	case 'K': mult = 1ULL << 10; s++; break;
	case 'M': mult = 1ULL << 20; s++; break;
	case 'G': mult = 1ULL << 30; s++; break;
	case 'T': mult = 1ULL << 40; s++; break;
	default:
		*error_r = "invalid size unit (use B, k, M, G or T)";
		return -1;
	}
	if (mult > 1 && toupper((unsigned char)*s) == 'B')
		s++;
	if (*s != '\0') {
		*error_r = "invalid size unit (use B, k, M, G or T)";
		return -1;
	}
	if (v > UINT64_MAX / mult) {
		*error_r = "size too large";
		return -1;
	}
	*bytes_r = v * mult;
	return 0;
}

static const struct {
	const char *name;
	uint64_t msecs;
} time_units[] = {
	{ "ms", 1 }, { "msec", 1 }, { "msecs", 1 }, { "millisecond", 1 }, { "milliseconds", 1 },
	{ "s", 1000 }, { "sec", 1000 }, { "secs", 1000 }, { "second", 1000 }, { "seconds", 1000 },
	{ "m", 60000 }, { "min", 60000 }, { "mins", 60000 }, { "minute", 60000 }, { "minutes", 60000 },
	{ "h", 3600000 }, { "hour", 3600000 }, { "hours", 3600000 },
	{ "d", 86400000 }, { "day", 86400000 }, { "days", 86400000 },
	{ "w", 604800000 }, { "week", 604800000 }, { "weeks", 604800000 },
};

int config_parse_time_msecs(const char *str, uint64_t *msecs_r, const char **error_r)
{
	uint64_t v, mult = 1000;
	const char *s = parse_u64_prefix(str, &v, error_r);

	if (s == NULL)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '\0') {
		size_t i;
		for (i = 0; i < sizeof(time_units) / sizeof(time_units[0]); i++) {
			if (strcasecmp(s, time_units[i].name) == 0)
				break;
		}
		if (i == sizeof(time_units) / sizeof(time_units[0])) {
			*error_r = "invalid time unit (use msecs, secs, mins, hours, days or weeks)";
			return -1;
		}
		mult = time_units[i].msecs;
	}
	if (v > UINT64_MAX / mult) {
		*error_r = "time too large";
		return -1;
	}
	*msecs_r = v * mult;
	return 0;
}

int config_parse_time(const char *str, unsigned *secs_r, const char **error_r)
{
	uint64_t msecs;

	if (config_parse_time_msecs(str, &msecs, error_r) < 0)
		return -1;
	if (msecs % 1000 != 0) {
		*error_r = "milliseconds not supported for this setting";
		return -1;
	}
	if (msecs / 1000 > UINT_MAX) {
		*error_r = "time too large";
		return -1;
	}
	*secs_r = (unsigned)(msecs / 1000);
	return 0;
}

int config_parse_bool(const char *str, bool *value_r, const char **error_r)
{
	if (strcasecmp(str, "yes") == 0)
		*value_r = true;
	else if (strcasecmp(str, "no") == 0)
		*value_r = false;
	else {
		*error_r = "must be 'yes' or 'no'";
		return -1;
	}
	return 0;
}
