package minio

import (
	"net/url"

	mgo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// WithEndpointForTest returns a copy of b that talks to endpoint (no credentials needed: nothing
// listens there), to simulate a server that went away after New succeeded.
func WithEndpointForTest(b *Backend, endpoint string) *Backend {
	u, err := url.Parse(endpoint)
	if err != nil {
		panic(err)
	}
	core, err := mgo.NewCore(u.Host, &mgo.Options{Creds: credentials.NewStaticV4("x", "y", ""), BucketLookup: mgo.BucketLookupPath, MaxRetries: 1})
	if err != nil {
		panic(err)
	}
	c := *b
	c.core = core
	return &c
}
