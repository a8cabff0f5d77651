// Go net/http through the bottle: the default transport (proxy from HTTPS_PROXY, roots from
// SSL_CERT_FILE, HTTP/2 attempted over the tunnel). Args: host, refused host, download size.
// Prints key=value lines.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"
)

func main() {
	host, refused, size := os.Args[1], os.Args[2], os.Args[3]
	fmt.Println("go=" + runtime.Version())
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get("https://" + host + "/download?bytes=" + size + "&c=go")
	if err != nil {
		fmt.Println("error=get: " + err.Error())
		os.Exit(1)
	}
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	resp.Body.Close()
	fmt.Printf("get_status=%d\nget_proto=%s\nget_sha=%s\n", resp.StatusCode, resp.Proto, hex.EncodeToString(h.Sum(nil)))
	if err != nil {
		fmt.Println("error=get body: " + err.Error())
		os.Exit(1)
	}
	body := make([]byte, 2*1024*1024+11)
	if _, err := rand.Read(body); err != nil {
		panic(err)
	}
	sum := sha256.Sum256(body)
	resp, err = c.Post("https://"+host+"/upload?c=go", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		fmt.Println("error=post: " + err.Error())
		os.Exit(1)
	}
	var up struct {
		Sha256 string `json:"sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	fmt.Printf("post_status=%d\npost_proto=%s\npost_sent_sha=%s\npost_origin_sha=%s\n", resp.StatusCode, resp.Proto, hex.EncodeToString(sum[:]), up.Sha256)
	resp, err = c.Get("https://" + refused + "/download?bytes=16&c=go")
	if err != nil {
		fmt.Println("refused=" + strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		resp.Body.Close()
		fmt.Printf("refused=reached status %d\n", resp.StatusCode)
	}
}
