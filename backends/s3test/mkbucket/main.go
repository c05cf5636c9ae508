// Command mkbucket creates a bucket on an S3 server (it is fine if it exists already), for
// .ci/s3-servers.sh: curl cannot sign SigV4 requests, and no AWS CLI is assumed.
//
//	MLGATE_TEST_S3_ACCESS_KEY=... MLGATE_TEST_S3_SECRET_KEY=... mkbucket ENDPOINT BUCKET
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkbucket ENDPOINT BUCKET (credentials in MLGATE_TEST_S3_ACCESS_KEY/MLGATE_TEST_S3_SECRET_KEY)")
		os.Exit(2)
	}
	endpoint, bucket := os.Args[1], os.Args[2]
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("MLGATE_TEST_S3_ACCESS_KEY"), os.Getenv("MLGATE_TEST_S3_SECRET_KEY"), ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		fmt.Fprintf(os.Stderr, "mkbucket: create %s at %s: %v\n", bucket, endpoint, err)
		os.Exit(1)
	}
}
