/*
 * creds: the AWS SDKs' chain (the environment, web identity, the shared
 * files, a container endpoint, instance metadata) and the provider that
 * keeps temporary credentials fresh. Each Criterion test runs in its own
 * process, so setenv here never leaks into another test.
 *
 * The HTTP sources are tested against tests/creds-server, a fake endpoint
 * on 127.0.0.1 that speaks each protocol and logs every request it gets.
 * Tests of refreshing set the provider's clock, never sleep: the fake
 * endpoint hands out a fixed expiry and the test moves the clock past it.
 */
#include <sys/stat.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <curl/curl.h>

#include "helpers.h"
#include "s3/credsrc.h"
#include "s3/s3.h"

#define CREDS_SERVER	"tests/creds-server"

static char	 tmpdir[64];
static char	 credpath[128];

static void
clean_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
		"AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT",
	};
	size_t	 i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		cr_assert_eq(unsetenv(vars[i]), 0);
	/* This machine's own instance metadata is never asked. */
	cr_assert_eq(setenv("AWS_EC2_METADATA_DISABLED", "true", 1), 0);
	cr_assert_eq(s3_global_init(), 0);
	cr_assert_lt((size_t)snprintf(tmpdir, sizeof(tmpdir),
	    "/tmp/prewctl-creds.XXXXXX"), sizeof(tmpdir));
	cr_assert_not_null(mkdtemp(tmpdir));
	/* A developer's own ~/.aws must never be read by a test. */
	cr_assert_eq(setenv("HOME", tmpdir, 1), 0);
	cr_assert_lt((size_t)snprintf(credpath, sizeof(credpath),
	    "%s/credentials", tmpdir), sizeof(credpath));
}

static void
remove_tmp(void)
{
	th_rmtree(tmpdir);
}

TestSuite(creds, .init = clean_env, .fini = remove_tmp);
/* The same, for the tests that run prewctl against the S3 server. */
TestSuite(creds_s3, .init = clean_env, .fini = remove_tmp);

static void
write_file(const char *path, const char *text)
{
	FILE	*f = fopen(path, "w");

	cr_assert_not_null(f, "cannot write %s", path);
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	cr_assert_eq(fclose(f), 0);
}

/* Use credpath as AWS_SHARED_CREDENTIALS_FILE with text in it. */
static void
cred_file(const char *text)
{
	write_file(credpath, text);
	cr_assert_eq(setenv("AWS_SHARED_CREDENTIALS_FILE", credpath, 1), 0);
}

/* The AWS documentation's example keys. */
#define AK	"AKIAIOSFODNN7EXAMPLE"
#define SK	"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

/* The whole chain once, as a run starts: the provider's first credentials. */
static enum s3_status
load(struct s3_creds *c, struct s3_error *e)
{
	struct s3_creds_provider	*p;
	enum s3_status			 st;

	memset(c, 0, sizeof(*c));
	if ((st = s3_creds_provider_new(NULL, &p, e)) != S3_OK)
		return st;
	st = s3_creds_snapshot(p, c, e);
	s3_creds_provider_free(p);
	return st;
}

Test(creds, env_keys)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", AK, 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", SK, 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.secret_key, SK);
	cr_expect_null(c.session_token);
	s3_creds_release(&c);
	cr_expect_null(c.access_key);
	cr_expect_null(c.secret_key);
	s3_creds_release(&c);

	cr_assert_eq(setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLE", 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.session_token, "FwoGZXIvYXdzEXAMPLE");
	s3_creds_release(&c);
	cr_expect_null(c.session_token);

	cr_assert_eq(setenv("AWS_SESSION_TOKEN", "", 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_null(c.session_token);
	s3_creds_release(&c);
}

Test(creds, env_beats_file)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cred_file("[default]\naws_access_key_id = FILEKEY\n"
	    "aws_secret_access_key = FILESECRET\n");
	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", AK, 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", SK, 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	s3_creds_release(&c);
}

Test(creds, env_only_access_key)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cred_file("[default]\naws_access_key_id = FILEKEY\n"
	    "aws_secret_access_key = FILESECRET\n");
	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", AK, 1), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "AWS_SECRET_ACCESS_KEY is not"), NULL,
	    "%s", e.message);
	cr_expect_null(strstr(e.message, AK));
	cr_expect_null(c.access_key);
	cr_expect_null(c.secret_key);
}

Test(creds, env_only_secret_key)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", SK, 1), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "AWS_ACCESS_KEY_ID is not"), NULL,
	    "%s", e.message);
	cr_expect_null(strstr(e.message, SK));
	cr_expect_null(c.access_key);
}

Test(creds, file_default_and_named_profile)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cred_file("# shared credentials\n"
	    "; another comment\n"
	    "\n"
	    "[default]\n"
	    "aws_access_key_id=" AK "\n"
	    "aws_secret_access_key=" SK "\n"
	    "region = eu-west-1\n"
	    "\n"
	    "[ other ]\r\n"
	    "  AWS_Access_Key_Id : OTHERKEY  \r\n"
	    "\taws_secret_access_key = other/secret+with=equals \r\n"
	    "aws_session_token = tok\r\n");
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.secret_key, SK);
	cr_expect_null(c.session_token);
	s3_creds_release(&c);

	cr_assert_eq(setenv("AWS_PROFILE", "other", 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, "OTHERKEY");
	cr_expect_str_eq(c.secret_key, "other/secret+with=equals");
	cr_expect_str_eq(c.session_token, "tok");
	s3_creds_release(&c);
}

Test(creds, home_fallback)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	char		 p[160];

	cr_assert_lt((size_t)snprintf(p, sizeof(p), "%s/.aws", tmpdir),
	    sizeof(p));
	cr_assert_eq(mkdir(p, 0700), 0);
	cr_assert_lt((size_t)snprintf(p, sizeof(p), "%s/.aws/credentials",
	    tmpdir), sizeof(p));
	write_file(p, "[default]\naws_access_key_id = HOMEKEY\n"
	    "aws_secret_access_key = HOMESECRET\n");
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, "HOMEKEY");
	s3_creds_release(&c);
}

Test(creds, no_credentials_anywhere)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, ".aws/credentials"), NULL, "%s",
	    e.message);
	cr_assert_eq(unsetenv("HOME"), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(e.message[0], '\0');
}

/* Debian's inih splits lines over 199 bytes; this reader must not. */
Test(creds, long_session_token_line)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	char		 tok[1201], text[1400];
	size_t		 i;

	for (i = 0; i < 1200; i++)
		tok[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789+/"[i % 64];
	tok[1200] = '\0';
	cr_assert_lt((size_t)snprintf(text, sizeof(text), "[default]\n"
	    "aws_session_token = %s\naws_access_key_id = %s\n"
	    "aws_secret_access_key = %s\n", tok, AK, SK), sizeof(text));
	cred_file(text);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_eq(strlen(c.session_token), 1200);
	cr_expect_str_eq(c.session_token, tok);
	cr_expect_str_eq(c.access_key, AK);
	s3_creds_release(&c);
}

Test(creds, missing_profile_or_key)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cred_file("[default]\naws_access_key_id = " AK "\n");
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "aws_secret_access_key"), NULL, "%s",
	    e.message);
	cr_expect_null(strstr(e.message, AK));
	cr_expect_null(c.access_key);

	cred_file("[default]\naws_secret_access_key = " SK "\n");
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "aws_access_key_id"), NULL, "%s",
	    e.message);
	cr_expect_null(strstr(e.message, SK));
	cr_expect_null(c.secret_key);

	cr_assert_eq(setenv("AWS_PROFILE", "nosuch", 1), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "'nosuch'"), NULL, "%s", e.message);
}

Test(creds, strict_reader)
{
	static const char *const bad[] = {
		"aws_access_key_id = " AK "\n[default]\n",
		"[default]\naws_access_key_id " SK "\n",
		"[default\naws_access_key_id = " AK "\n",
		"[]\n",
		"[default]\n = " SK "\n",
		"[default]\naws_access_key_id = a\naws_access_key_id = b\n"
		    "aws_secret_access_key = " SK "\n",
		"[default]\naws_access_key_id = a\n[default]\n"
		    "aws_secret_access_key = " SK "\n",
	};
	struct s3_creds	 c;
	struct s3_error	 e;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cred_file(bad[i]);
		cr_expect_eq(load(&c, &e), S3_ECREDS, "file %zu", i);
		cr_expect_neq(e.message[0], '\0', "file %zu", i);
		cr_expect_null(strstr(e.message, SK), "file %zu: %s", i,
		    e.message);
		cr_expect_null(c.access_key, "file %zu", i);
	}
	cred_file("[default]\naws_access_key_id " SK "\n");
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "line 2"), NULL, "%s", e.message);
}

Test(creds, region_from_env)
{
	cr_expect_null(s3_region_from_env());
	cr_assert_eq(setenv("AWS_DEFAULT_REGION", "eu-central-1", 1), 0);
	cr_expect_str_eq(s3_region_from_env(), "eu-central-1");
	cr_assert_eq(setenv("AWS_REGION", "ap-south-1", 1), 0);
	cr_expect_str_eq(s3_region_from_env(), "ap-south-1");
	cr_assert_eq(setenv("AWS_REGION", "", 1), 0);
	cr_expect_str_eq(s3_region_from_env(), "eu-central-1");
}

/* ---- ~/.aws/config ------------------------------------------------------ */

static char *
aws_file(const char *name, const char *text)
{
	char	 p[160];

	cr_assert_lt((size_t)snprintf(p, sizeof(p), "%s/.aws", tmpdir),
	    sizeof(p));
	(void)mkdir(p, 0700);
	cr_assert_lt((size_t)snprintf(p, sizeof(p), "%s/.aws/%s", tmpdir,
	    name), sizeof(p));
	write_file(p, text);
	return strdup(p);
}

Test(creds, config_file_profiles)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	free(aws_file("config", "[default]\nregion = eu-west-1\n"
	    "aws_access_key_id = CFGKEY\naws_secret_access_key = CFGSECRET\n"
	    "s3 =\n    max_concurrent_requests = 20\n"
	    "    addressing_style = path\n"
	    "\n[profile other]\naws_access_key_id = OTHERKEY\n"
	    "aws_secret_access_key = OTHERSECRET\n"
	    "aws_session_token = OTHERTOK\n"
	    "[sso-session corp]\nsso_region = us-east-1\n"
	    "[bare]\naws_access_key_id = BAREKEY\n"
	    "aws_secret_access_key = BARESECRET\n"));
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, "CFGKEY");
	cr_expect_str_eq(c.secret_key, "CFGSECRET");
	cr_expect_null(c.session_token);
	s3_creds_release(&c);

	cr_assert_eq(setenv("AWS_PROFILE", "other", 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, "OTHERKEY");
	cr_expect_str_eq(c.session_token, "OTHERTOK");
	s3_creds_release(&c);

	/* In the config file "[bare]" is no profile: it needs "profile ". */
	cr_assert_eq(setenv("AWS_PROFILE", "bare", 1), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "profile 'bare' not found"), NULL,
	    "%s", e.message);
	cr_expect_null(strstr(e.message, "BARESECRET"));
}

Test(creds, credentials_file_wins_key_by_key)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	char		*cfg;

	/* AWS_CONFIG_FILE names the config file; the token comes from it. */
	cfg = aws_file("elsewhere", "[profile p]\naws_access_key_id = CFGKEY\n"
	    "aws_secret_access_key = CFGSECRET\naws_session_token = CFGTOK\n");
	cr_assert_eq(setenv("AWS_CONFIG_FILE", cfg, 1), 0);
	cred_file("[p]\naws_access_key_id = CREDKEY\n"
	    "aws_secret_access_key = CREDSECRET\n");
	cr_assert_eq(setenv("AWS_PROFILE", "p", 1), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, "CREDKEY");
	cr_expect_str_eq(c.secret_key, "CREDSECRET");
	cr_expect_str_eq(c.session_token, "CFGTOK");
	s3_creds_release(&c);
	free(cfg);
}

Test(creds, config_file_refusals)
{
	static const struct {
		const char	*text;
		const char	*says;
	} bad[] = {
		{ "[default]\naws_access_key_id = a\n[profile default]\n",
		    "appears twice" },
		{ "[profile x]\nregion = eu-west-1\n[default]\n"
		    "role_arn = arn:aws:iam::1:role/r\nsource_profile = x\n",
		    "role_arn" },
		{ "[default]\ncredential_process = /bin/creds\n",
		    "credential_process" },
		{ "[default]\nsso_session = corp\n", "sso_session" },
		{ "[default]\naws_access_key_id = CFGKEY\n", "no aws_secret" },
		/* A secret over two lines: configparser would join them. */
		{ "[default]\naws_access_key_id = CFGKEY\n"
		    "aws_secret_access_key =\n  CFGSECRET\n", "line 4" },
	};
	struct s3_creds	 c;
	struct s3_error	 e;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		free(aws_file("config", bad[i].text));
		cr_expect_eq(load(&c, &e), S3_ECREDS, "file %zu", i);
		cr_expect_neq(strstr(e.message, bad[i].says), NULL,
		    "file %zu: %s", i, e.message);
		cr_expect_null(strstr(e.message, "CFGSECRET"), "file %zu", i);
		cr_expect_null(c.access_key, "file %zu", i);
	}
}

/* A profile with no keys is no source: the chain goes on. */
Test(creds, profile_without_keys_is_skipped)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	free(aws_file("config", "[default]\nregion = eu-west-1\n"));
	free(aws_file("credentials", "[default]\n"));
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "no credentials"), NULL, "%s",
	    e.message);
	cr_expect_neq(strstr(e.message, ".aws/config"), NULL, "%s",
	    e.message);
	cr_expect_neq(strstr(e.message, "disabled"), NULL, "%s", e.message);
}

/* ---- the answers' parsers --------------------------------------------- */

Test(creds, json_answer)
{
	static const char body[] = " {\"Code\" : \"Success\", "
	    "\"LastUpdated\":\"2024-01-01T00:00:00Z\", \"Type\":\"AWS-HMAC\","
	    "\"AccessKeyId\":\"ASIA\\u0041BC\",\"SecretAccessKey\":\"s\\/k\","
	    "\"Token\":\"to\\\"ken\",\"Expiration\":\"2030-06-01T12:00:00Z\","
	    "\"Count\": -12.5e3, \"On\": true, \"Off\": false, \"No\": null,"
	    "\"Emoji\":\"\\ud83d\\ude00\"}\n";
	static const char notoken[] = "{\"AccessKeyId\":\"a\","
	    "\"SecretAccessKey\":\"b\","
	    "\"Expiration\":\"2030-06-01T12:00:00Z\"}";
	struct s3_creds	 c;
	char		 why[128];

	cr_assert_eq(credsrc_parse_json(body, strlen(body), &c, why,
	    sizeof(why)), S3_OK, "%s", why);
	cr_expect_str_eq(c.access_key, "ASIAABC");
	cr_expect_str_eq(c.secret_key, "s/k");
	cr_expect_str_eq(c.session_token, "to\"ken");
	cr_expect_eq(c.expires, 1906545600);
	s3_creds_release(&c);

	/* A container endpoint may hand out no token. */
	cr_assert_eq(credsrc_parse_json(notoken, strlen(notoken), &c, why,
	    sizeof(why)), S3_OK, "%s", why);
	cr_expect_null(c.session_token);
	s3_creds_release(&c);
}

Test(creds, json_refused)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{",
		"{}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\"}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"tomorrow\"}",
		"{\"AccessKeyId\":\"a\",\"AccessKeyId\":\"b\","
		    "\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":1,\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\",\"x\":{}}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\",\"x\":[1]}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"} x",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}{}",
		"{\"AccessKeyId\":\"a\tb\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":\"a\\ud800\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":\"a\\u0000\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":\"a\\x\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\",\"n\":01}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\",\"n\":tru}",
		"{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":"
		    "\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
		"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\",}",
		"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"SeCrEt\","
		    "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
	};
	struct s3_creds	 c;
	struct buf	 big;
	char		 why[128];
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		cr_expect_eq(credsrc_parse_json(bad[i], strlen(bad[i]), &c,
		    why, sizeof(why)), S3_EPROTO, "body %zu", i);
		cr_expect_null(c.access_key, "body %zu", i);
		cr_expect_neq(why[0], '\0', "body %zu", i);
		cr_expect_null(strstr(why, "SeCrEt"), "body %zu: %s", i, why);
	}
	/* A NUL inside the body, and a token past the bound. */
	cr_expect_eq(credsrc_parse_json("{\"AccessKeyId\":\"a\0\"}", 20, &c,
	    why, sizeof(why)), S3_EPROTO);
	buf_init(&big, BUF_NOMAX);
	cr_assert_eq(buf_addstr(&big, "{\"AccessKeyId\":\"a\","
	    "\"SecretAccessKey\":\"b\",\"Expiration\":\"2030-01-01T00:00:00Z\","
	    "\"Token\":\""), 0);
	for (i = 0; i < CREDSRC_TOKEN_MAX + 1; i++)
		cr_assert_eq(buf_addch(&big, 'T'), 0);
	cr_assert_eq(buf_addstr(&big, "\"}"), 0);
	cr_expect_eq(credsrc_parse_json(big.data, big.len, &c, why,
	    sizeof(why)), S3_EPROTO);
	buf_release(&big);
}

#define STS_OK(creds) \
	"<AssumeRoleWithWebIdentityResponse " \
	"xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">" \
	"<AssumeRoleWithWebIdentityResult>" \
	"<AssumedRoleUser><Arn>arn</Arn><AssumedRoleId>id</AssumedRoleId>" \
	"</AssumedRoleUser><Credentials>" creds "</Credentials>" \
	"</AssumeRoleWithWebIdentityResult><ResponseMetadata>" \
	"<RequestId>r</RequestId></ResponseMetadata>" \
	"</AssumeRoleWithWebIdentityResponse>"
#define STS_CREDS \
	"<SessionToken>FwoGZXIvYXdz</SessionToken>" \
	"<SecretAccessKey>SeCrEt</SecretAccessKey>" \
	"<Expiration>2030-06-01T12:00:00Z</Expiration>" \
	"<AccessKeyId>ASIAFAKE</AccessKeyId>"

Test(creds, sts_answer)
{
	static const char ok[] = STS_OK(STS_CREDS);
	static const char err[] = "<ErrorResponse xmlns=\"https://sts."
	    "amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
	    "<Code>InvalidIdentityToken</Code><Message>no</Message></Error>"
	    "<RequestId>r</RequestId></ErrorResponse>";
	struct s3_creds	 c;
	char		 code[64], why[128];

	cr_assert_eq(credsrc_parse_sts(ok, strlen(ok), &c, code, sizeof(code),
	    why, sizeof(why)), S3_OK, "%s", why);
	cr_expect_str_eq(c.access_key, "ASIAFAKE");
	cr_expect_str_eq(c.secret_key, "SeCrEt");
	cr_expect_str_eq(c.session_token, "FwoGZXIvYXdz");
	cr_expect_eq(c.expires, 1906545600);
	s3_creds_release(&c);

	cr_expect_eq(credsrc_parse_sts(err, strlen(err), &c, code,
	    sizeof(code), why, sizeof(why)), S3_ESERVER);
	cr_expect_str_eq(code, "InvalidIdentityToken");
}

Test(creds, sts_refused)
{
	static const char *const bad[] = {
		"",
		"<Other/>",
		/* The fields, but not where STS puts them. */
		"<AssumeRoleWithWebIdentityResponse>" STS_CREDS
		    "</AssumeRoleWithWebIdentityResponse>",
		STS_OK("<AccessKeyId>A</AccessKeyId>" STS_CREDS),
		STS_OK("<SecretAccessKey>SeCrEt</SecretAccessKey>"
		    "<AccessKeyId>A</AccessKeyId>"),
		STS_OK("<AccessKeyId>A<b/></AccessKeyId>"
		    "<SecretAccessKey>SeCrEt</SecretAccessKey>"
		    "<Expiration>2030-06-01T12:00:00Z</Expiration>"),
		"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
		    STS_OK("<AccessKeyId>&e;</AccessKeyId>"
		    "<SecretAccessKey>SeCrEt</SecretAccessKey>"
		    "<Expiration>2030-06-01T12:00:00Z</Expiration>"),
		STS_OK(STS_CREDS) "<AssumeRoleWithWebIdentityResponse/>",
		STS_OK(STS_CREDS "<SessionToken>x</SessionToken>"),
		"<ErrorResponse><Error><Message>no code</Message></Error>"
		    "</ErrorResponse>",
	};
	struct s3_creds	 c;
	char		 code[64], why[128];
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		cr_expect_eq(credsrc_parse_sts(bad[i], strlen(bad[i]), &c,
		    code, sizeof(code), why, sizeof(why)), S3_EXML,
		    "body %zu", i);
		cr_expect_null(c.access_key, "body %zu", i);
		cr_expect_null(strstr(why, "SeCrEt"), "body %zu: %s", i, why);
	}
}

/* ---- the fake endpoints ------------------------------------------------- */

struct fake {
	pid_t	 pid;
	int	 port;
	char	 url[64];	/* http://127.0.0.1:port */
	char	 log[160];
};

/* Start tests/creds-server KIND with args (NULL-terminated, may be NULL). */
static void
fake_start(struct fake *f, const char *kind, const char *const *args)
{
	static int	 n;
	char		*argv[24];
	size_t		 a = 0, i;

	cr_assert_lt((size_t)snprintf(f->log, sizeof(f->log),
	    "%s/%s-%d.log", tmpdir, kind, n++), sizeof(f->log));
	argv[a++] = CREDS_SERVER;
	argv[a++] = (char *)kind;
	argv[a++] = "--log";
	argv[a++] = f->log;
	argv[a++] = "--max-seconds";
	argv[a++] = "300";
	for (i = 0; args != NULL && args[i] != NULL; i++) {
		cr_assert_lt(a, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[a++] = (char *)args[i];
	}
	argv[a] = NULL;
	f->port = th_start_server(argv, &f->pid);
	cr_assert_lt((size_t)snprintf(f->url, sizeof(f->url),
	    "http://127.0.0.1:%d", f->port), sizeof(f->url));
}

/* What the fake endpoint was asked, so far (caller frees). */
static char *
fake_log(const struct fake *f)
{
	if (access(f->log, F_OK) != 0)
		return strdup("");
	return th_slurp(f->log, NULL);
}

static size_t
count_of(const char *s, const char *what)
{
	size_t	 n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

static size_t
fake_requests(const struct fake *f)
{
	char	*log = fake_log(f);
	size_t	 n = count_of(log, "REQUEST ");

	free(log);
	return n;
}

/* A clock the test moves. */
static time_t	 fake_now;

static time_t
fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static void
expect_source(const char *source, const char *access_key)
{
	struct s3_creds_provider	*p;
	struct s3_creds			 c;
	struct s3_error			 e;

	cr_assert_eq(s3_creds_provider_new(NULL, &p, &e), S3_OK, "%s: %s",
	    source, e.message);
	cr_expect_eq(strncmp(s3_creds_provider_source(p), source,
	    strlen(source)), 0, "source '%s', want '%s'",
	    s3_creds_provider_source(p), source);
	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, access_key);
	s3_creds_release(&c);
	s3_creds_provider_free(p);
}

static char *
token_file(const char *name, const char *text)
{
	char	 p[160];

	cr_assert_lt((size_t)snprintf(p, sizeof(p), "%s/%s", tmpdir, name),
	    sizeof(p));
	write_file(p, text);
	return strdup(p);
}

static void
env_set(const char *name, const char *value)
{
	cr_assert_eq(setenv(name, value, 1), 0);
}

/* Each source set at once: the SDKs' order decides, one source is asked. */
Test(creds, precedence)
{
	struct fake	 sts, cont, imds;
	char		 url[96], *tok;

	fake_start(&sts, "sts", (const char *[]){ "--access-key", "STSKEY",
	    "--secret-key", "STSSECRET", NULL });
	fake_start(&cont, "container", (const char *[]){ "--access-key",
	    "CONTKEY", "--secret-key", "CONTSECRET", NULL });
	fake_start(&imds, "imds", (const char *[]){ "--access-key", "IMDSKEY",
	    "--secret-key", "IMDSSECRET", NULL });
	tok = token_file("web-token", "eyJ.web.identity\n");
	env_set("AWS_WEB_IDENTITY_TOKEN_FILE", tok);
	env_set("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/r");
	env_set("AWS_ENDPOINT_URL_STS", sts.url);
	cred_file("[default]\naws_access_key_id = FILEKEY\n"
	    "aws_secret_access_key = FILESECRET\n");
	cr_assert_lt((size_t)snprintf(url, sizeof(url), "%s/creds", cont.url),
	    sizeof(url));
	env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
	env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url);
	cr_assert_eq(unsetenv("AWS_EC2_METADATA_DISABLED"), 0);
	env_set("AWS_ACCESS_KEY_ID", AK);
	env_set("AWS_SECRET_ACCESS_KEY", SK);

	expect_source("environment", AK);
	cr_assert_eq(unsetenv("AWS_ACCESS_KEY_ID"), 0);
	cr_assert_eq(unsetenv("AWS_SECRET_ACCESS_KEY"), 0);
	expect_source("web identity at http://127.0.0.1:", "STSKEY");
	cr_assert_eq(unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE"), 0);
	expect_source("profile 'default'", "FILEKEY");
	cr_assert_eq(unsetenv("AWS_SHARED_CREDENTIALS_FILE"), 0);
	expect_source("container endpoint http://127.0.0.1:", "CONTKEY");
	cr_assert_eq(unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), 0);
	expect_source("instance metadata http://127.0.0.1:", "IMDSKEY");

	/* Each endpoint was asked only when its turn came. */
	cr_expect_eq(fake_requests(&sts), 1);
	cr_expect_eq(fake_requests(&cont), 1);
	cr_expect_eq(fake_requests(&imds), 3);
	th_stop_server(&sts.pid);
	th_stop_server(&cont.pid);
	th_stop_server(&imds.pid);
	free(tok);
}

Test(creds, web_identity)
{
	struct s3_creds_opts		 o = { .clock = fake_clock };
	struct s3_creds_provider	*p;
	struct s3_creds			 c;
	struct s3_error			 e;
	struct fake			 sts;
	char				 exp[32], *tok, *log;

	fake_now = time(NULL);
	cr_assert_lt((size_t)snprintf(exp, sizeof(exp), "%lld",
	    (long long)fake_now + 3600), sizeof(exp));
	fake_start(&sts, "sts", (const char *[]){ "--access-key", AK,
	    "--secret-key", SK, "--expires-at", exp, NULL });
	tok = token_file("web-token", "eyJ.first-token\n");
	env_set("AWS_WEB_IDENTITY_TOKEN_FILE", tok);
	env_set("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/prew ctl");
	env_set("AWS_ROLE_SESSION_NAME", "nightly-run");
	env_set("AWS_ENDPOINT_URL_STS", sts.url);

	cr_assert_eq(s3_creds_provider_new(&o, &p, &e), S3_OK, "%s",
	    e.message);
	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.secret_key, SK);
	cr_expect_str_eq(c.session_token, "FakeSessionToken-1");
	cr_expect_eq(c.expires, fake_now + 3600);
	s3_creds_release(&c);

	log = fake_log(&sts);
	cr_expect_neq(strstr(log, "REQUEST 1 POST /\n"), NULL, "%s", log);
	cr_expect_neq(strstr(log, "Action=AssumeRoleWithWebIdentity"), NULL);
	cr_expect_neq(strstr(log, "Version=2011-06-15"), NULL);
	cr_expect_neq(strstr(log, "RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000"
	    "%3Arole%2Fprew%20ctl"), NULL, "%s", log);
	cr_expect_neq(strstr(log, "RoleSessionName=nightly-run"), NULL);
	/* The file's newline is not part of the token. */
	cr_expect_neq(strstr(log, "WebIdentityToken=eyJ.first-token\n"),
	    NULL, "%s", log);
	free(log);

	/* Near the expiry the file is read again: Kubernetes rotates it. */
	write_file(tok, "eyJ.second-token");
	fake_now += 3600 - 60;
	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.session_token, "FakeSessionToken-2");
	s3_creds_release(&c);
	log = fake_log(&sts);
	cr_expect_eq(count_of(log, "REQUEST "), 2);
	cr_expect_neq(strstr(log, "WebIdentityToken=eyJ.second-token\n"),
	    NULL, "%s", log);
	free(log);
	s3_creds_provider_free(p);
	th_stop_server(&sts.pid);
	free(tok);
}

Test(creds, web_identity_refusals)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	struct fake	 sts;
	char		*tok;

	tok = token_file("web-token", "eyJ.do-not-print-this-token");
	env_set("AWS_WEB_IDENTITY_TOKEN_FILE", tok);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "AWS_ROLE_ARN is not"), NULL, "%s",
	    e.message);

	fake_start(&sts, "sts", (const char *[]){ "--status", "403", NULL });
	env_set("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/r");
	env_set("AWS_ENDPOINT_URL_STS", sts.url);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "AccessDenied (HTTP 403)"), NULL,
	    "%s", e.message);
	cr_expect_neq(strstr(e.message, "web identity at"), NULL, "%s",
	    e.message);
	cr_expect_null(strstr(e.message, "do-not-print"), "%s", e.message);

	/* The token file is needed at every fetch. */
	cr_assert_eq(unlink(tok), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "cannot read"), NULL, "%s",
	    e.message);
	cr_expect_eq(fake_requests(&sts), 1);
	th_stop_server(&sts.pid);
	free(tok);
}

Test(creds, container_relative_uri)
{
	struct s3_creds_opts		 o;
	struct s3_creds_provider	*p;
	struct s3_creds			 c;
	struct s3_error			 e;
	struct fake			 f;
	char				*log;

	fake_start(&f, "container", (const char *[]){ "--access-key", AK,
	    "--secret-key", SK, NULL });
	memset(&o, 0, sizeof(o));
	o.container_host = f.url;
	env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	    "/v2/credentials/9d0c7f2e-capability");
	/* The relative URI wins over the full one. */
	env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.2:1/x");
	cr_assert_eq(s3_creds_provider_new(&o, &p, &e), S3_OK, "%s",
	    e.message);
	/* The path is a capability: never in a name or a message. */
	cr_expect_null(strstr(s3_creds_provider_source(p), "capability"));
	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.session_token, "FakeSessionToken-1");
	s3_creds_release(&c);
	s3_creds_provider_free(p);
	log = fake_log(&f);
	cr_expect_neq(strstr(log, "REQUEST 1 GET "
	    "/v2/credentials/9d0c7f2e-capability\n"), NULL, "%s", log);
	cr_expect_null(strstr(log, "Authorization"), "%s", log);
	free(log);
	th_stop_server(&f.pid);
}

Test(creds, container_full_uri_with_token)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	struct fake	 f;
	char		 url[96], *tokpath, *log;

	fake_start(&f, "container", (const char *[]){ "--access-key", AK,
	    "--secret-key", SK, "--auth", "Bearer file-token", NULL });
	cr_assert_lt((size_t)snprintf(url, sizeof(url), "%s/get-credentials",
	    f.url), sizeof(url));
	env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);

	/* No token: the endpoint refuses, and we say so. */
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "HTTP 401"), NULL, "%s", e.message);
	cr_expect_neq(strstr(e.message, "container endpoint"), NULL);

	env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer file-token");
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	s3_creds_release(&c);

	/* The file wins over the variable; its newline is cut. */
	env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong");
	tokpath = token_file("auth-token", "Bearer file-token\n");
	env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokpath);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	s3_creds_release(&c);

	log = fake_log(&f);
	cr_expect_eq(count_of(log, "REQUEST "), 3);
	cr_expect_eq(count_of(log, "Authorization: Bearer file-token\n"), 2,
	    "%s", log);
	free(log);

	/* A token that would add a header is refused before any request. */
	write_file(tokpath, "Bearer x\r\nX-Evil: 1");
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "control character"), NULL, "%s",
	    e.message);
	cr_expect_eq(fake_requests(&f), 3);
	th_stop_server(&f.pid);
	free(tokpath);
}

Test(creds, container_full_uri_refused)
{
	static const char *const bad[] = {
		"http://192.0.2.10/creds",
		"http://example.com/creds",
		"http://169.254.169.254/latest/meta-data/",
		"http://[2001:db8::1]/creds",
		"http://127.0.0.1.example.com/creds",
		"ftp://127.0.0.1/creds",
		"127.0.0.1/creds",
	};
	struct s3_creds	 c;
	struct s3_error	 e;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad[i]);
		cr_expect_eq(load(&c, &e), S3_ECREDS, "%s", bad[i]);
		cr_expect_neq(strstr(e.message,
		    "AWS_CONTAINER_CREDENTIALS_FULL_URI"), NULL, "%s: %s",
		    bad[i], e.message);
	}
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* A raw GET, for what the fake endpoint says to a request without token. */
static long
http_status(const char *url)
{
	CURL	*h = curl_easy_init();
	long	 status = 0;

	cr_assert_not_null(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	cr_assert_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

Test(creds, imds_v2)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	struct fake	 f;
	char		 url[160], *log, *put, *list, *role, *tok, line[128];

	fake_start(&f, "imds", (const char *[]){ "--access-key", AK,
	    "--secret-key", SK, NULL });
	cr_assert_lt((size_t)snprintf(url, sizeof(url), "%s/", f.url),
	    sizeof(url));
	env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
	cr_assert_eq(unsetenv("AWS_EC2_METADATA_DISABLED"), 0);
	cr_assert_eq(load(&c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.secret_key, SK);
	cr_expect_str_eq(c.session_token, "FakeSessionToken-1");
	s3_creds_release(&c);

	/* The token first, then the two GETs, each carrying it. */
	log = fake_log(&f);
	cr_expect_eq(count_of(log, "REQUEST "), 3, "%s", log);
	put = strstr(log, "REQUEST 1 PUT /latest/api/token\n");
	list = strstr(log, "REQUEST 2 GET "
	    "/latest/meta-data/iam/security-credentials/\n");
	role = strstr(log, "REQUEST 3 GET "
	    "/latest/meta-data/iam/security-credentials/prewctl-test-role\n");
	cr_assert(put != NULL && list != NULL && role != NULL, "%s", log);
	cr_expect(strstr(put, "X-aws-ec2-metadata-token-ttl-seconds: 21600\n")
	    < list);
	tok = strstr(list, "X-aws-ec2-metadata-token: ImdsToken-");
	cr_assert(tok != NULL && tok < role, "%s", log);
	cr_assert_lt(strcspn(tok, "\n"), sizeof(line));
	memcpy(line, tok, strcspn(tok, "\n") + 1);
	line[strcspn(tok, "\n") + 1] = '\0';
	cr_expect_neq(strstr(role, line), NULL, "%s", log);
	free(log);

	/* Without the token the endpoint answers 401, as IMDSv2 does. */
	cr_assert_lt((size_t)snprintf(url, sizeof(url), "%s/latest/meta-data/"
	    "iam/security-credentials/", f.url), sizeof(url));
	cr_expect_eq(http_status(url), 401);
	th_stop_server(&f.pid);
}

Test(creds, imds_disabled)
{
	static const char *const off[] = { "true", "TRUE", "True" };
	struct s3_creds	 c;
	struct s3_error	 e;
	struct fake	 f;
	size_t		 i;

	fake_start(&f, "imds", NULL);
	env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", f.url);
	for (i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		env_set("AWS_EC2_METADATA_DISABLED", off[i]);
		cr_expect_eq(load(&c, &e), S3_ECREDS);
		cr_expect_neq(strstr(e.message, "disabled"), NULL, "%s",
		    e.message);
	}
	cr_expect_eq(fake_requests(&f), 0);
	/* Anything but true leaves it on. */
	env_set("AWS_EC2_METADATA_DISABLED", "false");
	cr_expect_eq(load(&c, &e), S3_OK, "%s", e.message);
	s3_creds_release(&c);
	th_stop_server(&f.pid);
}

Test(creds, failing_endpoints)
{
	struct s3_creds	 c;
	struct s3_error	 e;
	struct fake	 f, g;
	char		 url[96];

	fake_start(&f, "container", (const char *[]){ "--status", "500",
	    NULL });
	cr_assert_lt((size_t)snprintf(url, sizeof(url), "%s/creds", f.url),
	    sizeof(url));
	env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "container endpoint "
	    "http://127.0.0.1:"), NULL, "%s", e.message);
	cr_expect_neq(strstr(e.message, "HTTP 500"), NULL, "%s", e.message);
	/* A 500 is tried once more, then given up. */
	cr_expect_eq(fake_requests(&f), 2);
	th_stop_server(&f.pid);

	/* Nobody listens there any more. */
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "onnect"), NULL, "%s", e.message);

	/* Instance metadata with no role attached. */
	cr_assert_eq(unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), 0);
	fake_start(&g, "sts", NULL);	/* 404 to every IMDS path */
	env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", g.url);
	cr_assert_eq(unsetenv("AWS_EC2_METADATA_DISABLED"), 0);
	cr_expect_eq(load(&c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "no credentials in the environment"),
	    NULL, "%s", e.message);
	cr_expect_neq(strstr(e.message, "instance metadata http://127.0.0.1:"),
	    NULL, "%s", e.message);
	th_stop_server(&g.pid);
}

/* ---- refreshing --------------------------------------------------------- */

/* A container endpoint whose credentials expire at fake_now + 120. */
static struct s3_creds_provider *
expiring_provider(struct fake *f, const char *fail_after)
{
	static const struct s3_creds_opts o = { .clock = fake_clock };
	struct s3_creds_provider	*p;
	struct s3_error			 e;
	char				 exp[32], url[96];

	fake_now = time(NULL);
	cr_assert_lt((size_t)snprintf(exp, sizeof(exp), "%lld",
	    (long long)fake_now + 120), sizeof(exp));
	fake_start(f, "container", (const char *[]){ "--access-key", AK,
	    "--secret-key", SK, "--expires-at", exp,
	    fail_after != NULL ? "--fail-after" : NULL, fail_after, NULL });
	cr_assert_lt((size_t)snprintf(url, sizeof(url), "%s/creds", f->url),
	    sizeof(url));
	env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
	cr_assert_eq(s3_creds_provider_new(&o, &p, &e), S3_OK, "%s",
	    e.message);
	cr_assert_eq(fake_requests(f), 1);
	return p;
}

static void
expect_token(struct s3_creds_provider *p, const char *token)
{
	struct s3_creds	 c;
	struct s3_error	 e;

	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(c.session_token, token);
	s3_creds_release(&c);
}

Test(creds, refresh_before_expiry)
{
	struct s3_creds_provider	*p;
	struct fake			 f;

	p = expiring_provider(&f, NULL);
	/* Two minutes left, less than five: the next use fetches again. */
	expect_token(p, "FakeSessionToken-2");
	cr_expect_eq(fake_requests(&f), 2);
	/* The same expiry came back: no new fetch for a while. */
	expect_token(p, "FakeSessionToken-2");
	expect_token(p, "FakeSessionToken-2");
	cr_expect_eq(fake_requests(&f), 2);
	fake_now += 31;
	expect_token(p, "FakeSessionToken-3");
	cr_expect_eq(fake_requests(&f), 3);
	s3_creds_provider_free(p);
	th_stop_server(&f.pid);
}

Test(creds, refresh_failure_keeps_then_expires)
{
	struct s3_creds_provider	*p;
	struct s3_creds			 c;
	struct s3_error			 e;
	struct fake			 f;

	p = expiring_provider(&f, "1");
	/* The fetch fails (a 500, tried twice); the old ones still do. */
	expect_token(p, "FakeSessionToken-1");
	cr_expect_eq(fake_requests(&f), 3);
	/* Past the expiry a use waits for a fetch, and fails with ECREDS. */
	fake_now += 121;
	cr_expect_eq(s3_creds_snapshot(p, &c, &e), S3_ECREDS);
	cr_expect_null(c.access_key);
	cr_expect_neq(strstr(e.message, "credentials from container endpoint "
	    "http://127.0.0.1:"), NULL, "%s", e.message);
	cr_expect_neq(strstr(e.message, "expired"), NULL, "%s", e.message);
	cr_expect_neq(strstr(e.message, "HTTP 500"), NULL, "%s", e.message);
	cr_expect_null(strstr(e.message, SK));
	cr_expect_null(strstr(e.message, "FakeSessionToken"));
	cr_expect_eq(fake_requests(&f), 5);
	/* The endpoint is asked again only a few seconds later. */
	cr_expect_eq(s3_creds_snapshot(p, &c, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "HTTP 500"), NULL, "%s", e.message);
	cr_expect_eq(fake_requests(&f), 5);
	fake_now += 5;
	cr_expect_eq(s3_creds_snapshot(p, &c, &e), S3_ECREDS);
	cr_expect_eq(fake_requests(&f), 7);
	s3_creds_provider_free(p);
	th_stop_server(&f.pid);
}

#define NTHREADS	8
#define NSNAPS		50

static void *
snapshots(void *arg)
{
	struct s3_creds_provider	*p = arg;
	struct s3_creds			 c;
	struct s3_error			 e;
	int				 i, bad = 0;

	for (i = 0; i < NSNAPS; i++) {
		if (s3_creds_snapshot(p, &c, &e) != S3_OK ||
		    strcmp(c.access_key, AK) != 0 ||
		    strcmp(c.secret_key, SK) != 0 ||
		    strncmp(c.session_token, "FakeSessionToken-", 17) != 0)
			bad++;
		s3_creds_release(&c);
	}
	return (void *)(intptr_t)bad;
}

/* Many threads want new credentials at once: one fetch serves them all. */
Test(creds, refresh_one_fetch_for_all_threads)
{
	struct s3_creds_provider	*p;
	struct fake			 f;
	pthread_t			 t[NTHREADS];
	void				*bad;
	int				 i;

	p = expiring_provider(&f, NULL);
	for (i = 0; i < NTHREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, snapshots, p), 0);
	for (i = 0; i < NTHREADS; i++) {
		cr_assert_eq(pthread_join(t[i], &bad), 0);
		cr_expect_eq((intptr_t)bad, 0, "thread %d", i);
	}
	cr_expect_eq(fake_requests(&f), 2);
	s3_creds_provider_free(p);
	th_stop_server(&f.pid);
}

Test(creds, sources_and_static_provider)
{
	struct s3_creds			 in = { AK, SK, NULL, 0 }, c;
	struct s3_creds_provider	*p;
	struct s3_error			 e;

	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", AK, 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", SK, 1), 0);
	cr_assert_eq(s3_creds_provider_new(NULL, &p, &e), S3_OK, "%s",
	    e.message);
	cr_expect_str_eq(s3_creds_provider_source(p), "environment");
	s3_creds_provider_free(p);
	cr_assert_eq(unsetenv("AWS_ACCESS_KEY_ID"), 0);
	cr_assert_eq(unsetenv("AWS_SECRET_ACCESS_KEY"), 0);
	cred_file("[p]\naws_access_key_id = FILEKEY\n"
	    "aws_secret_access_key = FILESECRET\n");
	cr_assert_eq(setenv("AWS_PROFILE", "p", 1), 0);
	cr_assert_eq(s3_creds_provider_new(NULL, &p, &e), S3_OK, "%s",
	    e.message);
	cr_expect_str_eq(s3_creds_provider_source(p), "profile 'p'");
	s3_creds_provider_free(p);

	cr_assert_not_null(p = s3_creds_provider_static(&in));
	cr_expect_str_eq(s3_creds_provider_source(p), "static credentials");
	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.secret_key, SK);
	cr_expect_null(c.session_token);
	cr_expect_eq(c.expires, 0);
	/* A copy: the caller's to wipe and free. */
	cr_expect_neq(c.access_key, in.access_key);
	s3_creds_release(&c);
	s3_creds_provider_free(p);
}

/* ---- the S3 client signs with the provider's credentials ---------------- */

/*
 * The fake container endpoint answers any GET, so a second one stands in
 * for S3 here and logs the headers the client signs and sends.
 */
Test(creds, client_signs_each_attempt_with_a_snapshot)
{
	struct s3_creds_provider	*p;
	struct s3_config		 cfg;
	struct s3_client		*cl;
	struct s3_error			 e;
	struct fake			 f, s3;
	struct buf			 out;
	char				*log;

	p = expiring_provider(&f, "2");
	fake_start(&s3, "container", NULL);
	memset(&cfg, 0, sizeof(cfg));
	cfg.endpoint = s3.url;
	cfg.bucket = "b";
	cfg.path_style = 1;
	cfg.tls_verify = 1;
	cfg.creds = p;
	cr_assert_not_null(cl = s3_client_new(&cfg));
	buf_init(&out, 1 << 20);

	cr_assert_eq(s3_get(cl, "k", 1 << 20, &out, NULL, &e), S3_OK, "%s",
	    e.message);
	log = fake_log(&s3);
	cr_expect_neq(strstr(log, "x-amz-security-token: FakeSessionToken-2\n"),
	    NULL, "%s", log);
	cr_expect_neq(strstr(log, "SignedHeaders=host;x-amz-content-sha256;"
	    "x-amz-date;x-amz-security-token,"), NULL, "%s", log);
	cr_expect_neq(strstr(log, "Credential=" AK "/"), NULL, "%s", log);
	free(log);

	/* Past the expiry, with the endpoint failing: no request goes out. */
	fake_now += 121;
	cr_expect_eq(s3_get(cl, "k", 1 << 20, &out, NULL, &e), S3_ECREDS);
	cr_expect_neq(strstr(e.message, "expired"), NULL, "%s", e.message);
	cr_expect_eq(fake_requests(&s3), 1);

	buf_release(&out);
	s3_client_free(cl);
	s3_creds_provider_free(p);
	th_stop_server(&s3.pid);
	th_stop_server(&f.pid);
}

/* ---- prewctl against the test server, with each source ------------------ */

#define SESSION_TOKEN	"SeSsIoNfAkE-3b9e1c7d-never-print-QWERTYUIOP"
#define WEB_TOKEN	"eyJ-WeBiDeNtItY-8f2a6c1e-never-print-ZXCVBNM"
#define AUTH_TOKEN	"AuThToKeN-5d4c3b2a-never-print-ASDFGHJKLZ"
#define NO_ENV_KEYS	"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="

static char *
xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
xprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0);
	return s;
}

/* Everything prewctl printed, searched for every secret of the test. */
static void
expect_quiet(const struct th_run *r, const char *what)
{
	th_expect_no_secret(r->out.data, th_env()->secret_key, 0, what);
	th_expect_no_secret(r->err.data, th_env()->secret_key, 0, what);
	th_expect_no_secret(r->out.data, SESSION_TOKEN, 1, what);
	th_expect_no_secret(r->err.data, SESSION_TOKEN, 1, what);
	th_expect_no_secret(r->out.data, WEB_TOKEN, 1, what);
	th_expect_no_secret(r->err.data, WEB_TOKEN, 1, what);
	th_expect_no_secret(r->out.data, AUTH_TOKEN, 1, what);
	th_expect_no_secret(r->err.data, AUTH_TOKEN, 1, what);
}

/*
 * RGW (rgw_s3_auth_use_sts off, its default) checks the signature with the
 * user's own keys and does not decode x-amz-security-token, so the fake
 * endpoints hand out the test user's keys with a session token, and plan
 * and generate (which PUTs the stamps) must work with each source.
 */
Test(creds_s3, prewctl_with_each_source)
{
	static const char *const cmds[][2] = { { "plan" }, { "generate" } };
	const struct th_env	*te = th_env();
	struct s3_client	*cl;
	struct fake		 sts, cont, imds;
	struct th_run		 r;
	struct buf		 all;
	const char		*prefix, *p;
	char			*cfg, *webtok, *sts_env, *wt_env, *cont_env;
	char			*imds_env, *log, what[96], tok[64];
	const char		*args[8];
	size_t			 s, c, n;

	fake_start(&sts, "sts", (const char *[]){ "--token", SESSION_TOKEN,
	    NULL });
	fake_start(&cont, "container", (const char *[]){ "--token",
	    SESSION_TOKEN, "--auth", AUTH_TOKEN, NULL });
	fake_start(&imds, "imds", (const char *[]){ "--token", SESSION_TOKEN,
	    NULL });
	webtok = token_file("web-token", WEB_TOKEN "\n");
	log = xprintf("[profile rgw]\naws_access_key_id = %s\n"
	    "aws_secret_access_key = %s\naws_session_token = %s-profile\n",
	    te->access_key, te->secret_key, SESSION_TOKEN);
	free(aws_file("config", log));
	free(log);
	wt_env = xprintf("AWS_WEB_IDENTITY_TOKEN_FILE=%s", webtok);
	sts_env = xprintf("AWS_ENDPOINT_URL_STS=%s", sts.url);
	cont_env = xprintf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%s/creds",
	    cont.url);
	imds_env = xprintf("AWS_EC2_METADATA_SERVICE_ENDPOINT=%s", imds.url);
	prefix = th_prefix("creds");
	cfg = th_s3_config(prefix, "[preset small]\nwidth = 64\n");
	{
		const char *const envs[][7] = {
			{ NO_ENV_KEYS, wt_env, sts_env, "AWS_ROLE_ARN="
			    "arn:aws:iam::000000000000:role/prewctl", NULL },
			{ NO_ENV_KEYS, "AWS_PROFILE=rgw", NULL },
			{ NO_ENV_KEYS, cont_env,
			    "AWS_CONTAINER_AUTHORIZATION_TOKEN=" AUTH_TOKEN,
			    NULL },
			{ NO_ENV_KEYS, imds_env,
			    "AWS_EC2_METADATA_DISABLED=false", NULL },
		};

		buf_init(&all, BUF_NOMAX);
		for (s = 0; s < sizeof(envs) / sizeof(envs[0]); s++)
			for (c = 0; c < 2; c++) {
				n = 0;
				args[n++] = "-v";
				args[n++] = "-v";
				args[n++] = "-c";
				args[n++] = cfg;
				args[n++] = cmds[c][0];
				args[n] = NULL;
				th_prewctl(&r, args, envs[s]);
				cr_assert_lt((size_t)snprintf(what,
				    sizeof(what), "%s with source %zu",
				    cmds[c][0], s), sizeof(what));
				th_expect_exit(&r, 0, what);
				cr_expect_neq(strstr(r.err.data, "GET /"), NULL,
				    "%s: -vv logged no request", what);
				expect_quiet(&r, what);
				cr_assert_eq(buf_addstr(&all, r.out.data), 0);
				cr_assert_eq(buf_addstr(&all, r.err.data), 0);
				th_run_release(&r);
			}
	}
	/* Each endpoint was asked once per run. */
	cr_expect_eq(fake_requests(&sts), 2);
	cr_expect_eq(fake_requests(&cont), 2);
	cr_expect_eq(fake_requests(&imds), 6);
	/* Nor any IMDS token the runs were given. */
	log = fake_log(&imds);
	for (p = log; (p = strstr(p, ": ImdsToken-")) != NULL; p += 2) {
		n = strcspn(p + 2, "\n");
		cr_assert_lt(n, sizeof(tok));
		memcpy(tok, p + 2, n);
		tok[n] = '\0';
		cr_expect_null(strstr(all.data, tok), "an IMDS token shown");
	}
	free(log);
	buf_release(&all);

	th_stop_server(&sts.pid);
	th_stop_server(&cont.pid);
	th_stop_server(&imds.pid);
	cl = th_client();
	(void)th_delete_prefix(cl, prefix);
	s3_client_free(cl);
	unlink(cfg);
	free(cfg);
	free(webtok);
	free(wt_env);
	free(sts_env);
	free(cont_env);
	free(imds_env);
}

/* A source that fails stops the run at once, with exit 2 and a reason. */
Test(creds_s3, prewctl_with_a_failing_source)
{
	struct fake	 sts, cont;
	struct th_run	 r;
	char		*cfg, *webtok, *sts_env, *wt_env, *cont_env;
	const char	*args[] = { "-v", "-v", "-c", NULL, "plan", NULL };

	fake_start(&sts, "sts", (const char *[]){ "--status", "403", NULL });
	fake_start(&cont, "container", (const char *[]){ "--status", "500",
	    NULL });
	webtok = token_file("web-token", WEB_TOKEN);
	wt_env = xprintf("AWS_WEB_IDENTITY_TOKEN_FILE=%s", webtok);
	sts_env = xprintf("AWS_ENDPOINT_URL_STS=%s", sts.url);
	cont_env = xprintf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%s/creds",
	    cont.url);
	cfg = th_s3_config(th_prefix("creds-fail"), "[preset s]\nwidth = 9\n");
	args[3] = cfg;
	{
		const char *const env[] = { NO_ENV_KEYS, wt_env, sts_env,
		    "AWS_ROLE_ARN=arn:aws:iam::000000000000:role/r", NULL };

		th_prewctl(&r, args, env);
	}
	th_expect_exit(&r, 2, "web identity refused");
	cr_expect_neq(strstr(r.err.data, "prewctl: cannot open storage '"),
	    NULL, "%s", r.err.data);
	cr_expect_neq(strstr(r.err.data, "': web identity at "
	    "http://127.0.0.1:"), NULL, "%s", r.err.data);
	cr_expect_neq(strstr(r.err.data, "AccessDenied (HTTP 403)"), NULL,
	    "%s", r.err.data);
	expect_quiet(&r, "web identity refused");
	th_run_release(&r);
	{
		const char *const env[] = { NO_ENV_KEYS, cont_env,
		    "AWS_CONTAINER_AUTHORIZATION_TOKEN=" AUTH_TOKEN, NULL };

		th_prewctl(&r, args, env);
	}
	th_expect_exit(&r, 2, "container endpoint failing");
	cr_expect_neq(strstr(r.err.data, "prewctl: cannot open storage '"),
	    NULL, "%s", r.err.data);
	cr_expect_neq(strstr(r.err.data, "': container endpoint "
	    "http://127.0.0.1:"), NULL, "%s", r.err.data);
	cr_expect_neq(strstr(r.err.data, ": HTTP 500"), NULL, "%s",
	    r.err.data);
	expect_quiet(&r, "container endpoint failing");
	th_run_release(&r);

	th_stop_server(&sts.pid);
	th_stop_server(&cont.pid);
	unlink(cfg);
	free(cfg);
	free(webtok);
	free(wt_env);
	free(sts_env);
	free(cont_env);
}
