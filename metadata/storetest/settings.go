package storetest

import (
	"bytes"
	"context"

	"github.com/mlgate/mlgate/metadata"
)

// signingKey calls SigningKey, failing the test on an error or a key of the wrong length.
func (f *fx) signingKey(ctx context.Context) []byte {
	f.Helper()
	k, err := f.s.SigningKey(ctx)
	if err != nil {
		f.Fatalf("SigningKey: %v", err)
	}
	if len(k) != metadata.SigningKeyLen {
		f.Fatalf("SigningKey: %d bytes, want %d", len(k), metadata.SigningKeyLen)
	}
	return k
}

var settingsTests = []test{
	{"SigningKeyCreatedOnce", func(f *fx) {
		first := f.signingKey(f.ctx)
		if bytes.Equal(first, make([]byte, metadata.SigningKeyLen)) {
			f.Fatal("SigningKey is all zeros: not drawn from crypto/rand")
		}
		// The caller owns what it got: changing it changes nothing stored.
		keep := bytes.Clone(first)
		first[0] ^= 0xff
		for range 3 {
			if got := f.signingKey(f.ctx); !bytes.Equal(got, keep) {
				f.Fatal("a later SigningKey call returned another key")
			}
		}
		// Other writes leave it alone.
		f.project("team/a")
		if got := f.signingKey(f.ctx); !bytes.Equal(got, keep) {
			f.Fatal("SigningKey changed after another write")
		}
	}},
	{"SigningKeyConcurrentFirstCalls", func(f *fx) {
		// Replicas starting together on an empty database each call it first: exactly one key wins.
		const n = 16
		keys := make([][]byte, n)
		errs := make([]error, n)
		burst(n, func(i int) { keys[i], errs[i] = f.s.SigningKey(f.ctx) })
		for i := range n {
			if errs[i] != nil {
				f.Fatalf("caller %d: %v", i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				f.Fatalf("concurrent first calls returned different keys (callers 0 and %d)", i)
			}
		}
		if got := f.signingKey(f.ctx); !bytes.Equal(got, keys[0]) {
			f.Fatal("the key after the burst is not the one the burst returned")
		}
	}},
	{"SigningKeyInsideUpdate", func(f *fx) {
		// Called with an Update's context it joins the transaction, and what that commits is the key.
		var inside []byte
		err := f.s.Update(f.ctx, func(ctx context.Context) error {
			if _, err := f.s.EnsureProject(ctx, "team/a"); err != nil {
				return err
			}
			k, err := f.s.SigningKey(ctx)
			inside = k
			return err
		})
		f.wantErr("Update", err, nil)
		if got := f.signingKey(f.ctx); !bytes.Equal(got, inside) {
			f.Fatal("the key after the Update is not the one SigningKey returned inside it")
		}
	}},
}
