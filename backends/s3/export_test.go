package s3

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// WithEndpointForTest returns a copy of b that talks to endpoint, to simulate a server that went away
// after New succeeded.
func WithEndpointForTest(b *Backend, endpoint string) *Backend {
	c := *b
	c.client = s3.New(b.client.Options(), func(o *s3.Options) { o.BaseEndpoint = aws.String(endpoint) })
	return &c
}
