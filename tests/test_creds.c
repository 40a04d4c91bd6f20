/*
 * creds: the environment, then the shared credentials and config files, as
 * the AWS CLI documents them. Each Criterion test runs in its own process,
 * so setenv here never leaks into another test.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "s3/s3.h"

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
	};
	size_t	 i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		cr_assert_eq(unsetenv(vars[i]), 0);
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

/* As a run starts: a provider, and the credentials it hands out. */
static enum s3_status
load(struct s3_creds *c, struct s3_error *e)
{
	struct s3_creds_provider	*p;
	enum s3_status			 st;

	memset(c, 0, sizeof(*c));
	if ((st = s3_creds_provider_new(&p, e)) != S3_OK)
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
}

Test(creds, sources_and_static_provider)
{
	struct s3_creds			 in = { AK, SK, NULL }, c;
	struct s3_creds_provider	*p;
	struct s3_error			 e;

	cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", AK, 1), 0);
	cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", SK, 1), 0);
	cr_assert_eq(s3_creds_provider_new(&p, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(s3_creds_provider_source(p), "environment");
	s3_creds_provider_free(p);
	cr_assert_eq(unsetenv("AWS_ACCESS_KEY_ID"), 0);
	cr_assert_eq(unsetenv("AWS_SECRET_ACCESS_KEY"), 0);
	cred_file("[p]\naws_access_key_id = FILEKEY\n"
	    "aws_secret_access_key = FILESECRET\n");
	cr_assert_eq(setenv("AWS_PROFILE", "p", 1), 0);
	cr_assert_eq(s3_creds_provider_new(&p, &e), S3_OK, "%s", e.message);
	cr_expect_str_eq(s3_creds_provider_source(p), "profile 'p'");
	s3_creds_provider_free(p);

	cr_assert_not_null(p = s3_creds_provider_static(&in));
	cr_expect_str_eq(s3_creds_provider_source(p), "static credentials");
	cr_assert_eq(s3_creds_snapshot(p, &c, &e), S3_OK);
	cr_expect_str_eq(c.access_key, AK);
	cr_expect_str_eq(c.secret_key, SK);
	cr_expect_null(c.session_token);
	/* A copy: the caller's to wipe and free. */
	cr_expect_neq(c.access_key, in.access_key);
	s3_creds_release(&c);
	s3_creds_provider_free(p);
}
