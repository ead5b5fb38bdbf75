package main

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/pquerna/otp/totp"
	_ "golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite"
)

func main() {}
