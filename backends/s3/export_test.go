package s3

import (
	"net/http"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// WithEndpointForTest returns a copy of b that talks to endpoint, to simulate a server that went away
// after New succeeded. Direct gets go there too (their URLs are presigned by the copy's client).
func WithEndpointForTest(b *Backend, endpoint string) *Backend {
	c := *b
	c.client = s3.New(b.client.Options(), func(o *s3.Options) { o.BaseEndpoint = aws.String(endpoint) })
	c.presign = s3.NewPresignClient(c.client)
	return &c
}

// WithProxyForTest returns a copy of b whose direct gets see proxy as the SDK transport's proxy
// function (the SDK's own requests are unaffected).
func WithProxyForTest(b *Backend, proxy func(*http.Request) (*url.URL, error)) *Backend {
	c := *b
	c.proxy = proxy
	return &c
}
