package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlgate/mlgate/backends"
)

// The keys of a backend's config: that mlgate reads itself rather than the backend's factory: whether
// whole-file downloads are redirected to presigned URLs, how long such a URL is valid and how long a
// transfer through one may last beyond that.
const (
	keyRedirectDownloads = "redirect_downloads"
	keyRedirectExpiry    = "redirect_expiry"
	keyRedirectGrace     = "redirect_grace"

	defaultRedirectExpiry = 5 * time.Minute
	defaultRedirectGrace  = time.Hour
)

// redirectTypes are the in-process types whose backends implement backends.Presigner.
var redirectTypes = map[string]bool{"s3": true, "minio": true}

// redirect splits the spec's config into the download redirect policy (nil: downloads are proxied)
// and the config the backend's factory gets, without the redirect keys (the S3 factories refuse
// unknown keys, and the policy is not theirs to apply). Errors wrap ErrConfig and name the key: a
// redirect key on a backend that cannot presign (localfs, a plugin), a redirect_downloads that is not
// a boolean, a duration that does not parse, an expiry outside 1s..7d (SigV4's limit), a negative grace.
func (s backendSpec) redirect() (*backends.RedirectPolicy, json.RawMessage, error) {
	raw := s.Config.raw()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("%w: config: %v", ErrConfig, err)
	}
	_, d := m[keyRedirectDownloads]
	_, e := m[keyRedirectExpiry]
	_, g := m[keyRedirectGrace]
	if !d && !e && !g {
		return nil, raw, nil
	}
	if s.Plugin != nil || !redirectTypes[s.Type] {
		return nil, nil, fmt.Errorf("%w: %s, %s and %s are for backends of type s3 or minio only, not %s "+
			"(its downloads are always proxied through mlgate)", ErrConfig, keyRedirectDownloads, keyRedirectExpiry, keyRedirectGrace, s.typeName())
	}
	var on bool
	if d {
		if err := json.Unmarshal(m[keyRedirectDownloads], &on); err != nil {
			return nil, nil, fmt.Errorf("%w: %s must be true or false", ErrConfig, keyRedirectDownloads)
		}
	}
	p := backends.RedirectPolicy{Expiry: defaultRedirectExpiry, Grace: defaultRedirectGrace}
	if e {
		v, err := configDuration(m[keyRedirectExpiry], keyRedirectExpiry)
		if err != nil {
			return nil, nil, err
		}
		if v < time.Second || v > backends.MaxPresignExpiry {
			return nil, nil, fmt.Errorf("%w: %s %v outside 1s..168h (a presigned URL is valid for at most 7 days)", ErrConfig, keyRedirectExpiry, v)
		}
		p.Expiry = v
	}
	if g {
		v, err := configDuration(m[keyRedirectGrace], keyRedirectGrace)
		if err != nil {
			return nil, nil, err
		}
		if v < 0 {
			return nil, nil, fmt.Errorf("%w: %s must not be negative", ErrConfig, keyRedirectGrace)
		}
		p.Grace = v
	}
	delete(m, keyRedirectDownloads)
	delete(m, keyRedirectExpiry)
	delete(m, keyRedirectGrace)
	rest, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: config: %v", ErrConfig, err)
	}
	if !on {
		return nil, rest, nil
	}
	return &p, rest, nil
}

// configDuration reads a duration given as a string such as "5m" or "90s".
func configDuration(raw json.RawMessage, key string) (time.Duration, error) {
	var s string
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&s); err != nil {
		return 0, fmt.Errorf("%w: %s must be a duration such as \"5m\", not %s", ErrConfig, key, raw)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrConfig, key, err)
	}
	return v, nil
}
